#!/usr/bin/env bash
# Debian packages Lunettes uses: espeak-ng (speech synthesis: test clips, spoken answers),
# ffmpeg (audio formats libsndfile cannot read, e.g. WebM and M4A recordings) and a C compiler
# (gcc: the decoding kernel, fusion/kernels/gemv.c, is built once per machine).
# For the tests (LUNETTES_TESTS=1, set by `make test`): chromium (browser tests), certutil
# (libnss3-tools: the phone test's Chromium trusts the local HTTPS authority), flite (the
# training smoke run and voice tests speak with it), sox (tempo and pitch changes), a font
# for the rendered signs that OCR reads (fonts-dejavu-core), the emoji font of the held-out
# evaluation sets (fonts-noto-color-emoji: a test checks the colour set), and a PostgreSQL
# server (the store's tests start one of their own: tests/postgres.py).
# For adapter training and evaluation (LUNETTES_TRAINING=1, set by `make train` / `make eval`):
# flite and sox too, images with names (openclipart-png, gnome-backgrounds, Tux Paint's named
# stamps: tuxpaint-stamps-default), an emoji font for the held-out named images only
# (fonts-noto-color-emoji), fonts for the held-out signs (fonts-liberation, fonts-freefont-ttf),
# short English sentences and a word list (fortunes-min, wamerican).
# Installs the missing ones when running as root with apt-get; otherwise says what to install.
set -euo pipefail
missing=()
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)  # builds the decoding kernel once
if [ "${LUNETTES_TRAINING:-0}" = 1 ] || [ "${LUNETTES_TESTS:-0}" = 1 ]; then
    command -v flite >/dev/null 2>&1 || missing+=(flite)
    command -v sox >/dev/null 2>&1 || missing+=(sox)
    [ -d /usr/share/fonts/truetype/dejavu ] || missing+=(fonts-dejavu-core)  # signs for OCR
    [ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing+=(fonts-noto-color-emoji)
fi
if [ "${LUNETTES_TRAINING:-0}" = 1 ]; then
    [ -d /usr/share/fonts/truetype/liberation ] || missing+=(fonts-liberation)
    [ -d /usr/share/fonts/truetype/freefont ] || missing+=(fonts-freefont-ttf)
    [ -d /usr/share/openclipart/png ] || missing+=(openclipart-png)
    [ -d /usr/share/tuxpaint/stamps ] || missing+=(tuxpaint-stamps-default)
    [ -d /usr/share/backgrounds/gnome ] || missing+=(gnome-backgrounds)
    [ -d /usr/share/games/fortunes ] || missing+=(fortunes-min)
    [ -f /usr/share/dict/words ] || missing+=(wamerican)
fi
if [ "${LUNETTES_TESTS:-0}" = 1 ]; then
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v certutil >/dev/null 2>&1 || missing+=(libnss3-tools)
    compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || missing+=(postgresql)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "note: please install ${missing[*]} (e.g. sudo apt-get install ${missing[*]});" \
         "without espeak-ng the speech tests are skipped, without ffmpeg only WAV/FLAC/OGG/MP3 audio is read," \
         "without a C compiler decoding uses torch's slower matrix-vector path" >&2
fi
