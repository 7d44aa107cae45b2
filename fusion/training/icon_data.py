"""Icons named by the people who drew them: more training drawings for the name head.

Icon sets from the npm registry in Iconify's JSON format (`@iconify-json/<set>`): each icon
is an SVG body under the name its designers gave it ("fox-head", "fruit-watermelon",
"fire-truck"). They are rendered once into PNG files under the training cache
(`<cache>/icons/<set>/<icon>.png`), where name_data.py reads them as it reads the other
drawings: the icon's name is its title; there is no folder word.

Chosen by kind, not by what they show: every non-emoji multicolour set of Iconify's
catalogue that draws things (its "UI Multicolor" sets, Icons8's flat colour icons, the
weather set), and two large one-colour sets of everyday things (game-icons, Material Design
Icons), drawn in one random dark colour per icon. Logos, flags, programming and emoji sets
are left out: emoji of any set are held out for evaluation (named_images.py), never trained
on. Versions and the registry's sha512 are pinned; a tarball that does not match is refused.
"""

import base64
import colorsys
import hashlib
import io
import json
import random
import tarfile
import urllib.request
from pathlib import Path

from tqdm import tqdm

REGISTRY = "https://registry.npmjs.org"
RENDER_SIZE = 224  # pixels, the long side
# set -> (version, the registry's sha512 integrity of its tarball)
ICON_SETS: dict[str, tuple[str, str]] = {
    "streamline-ultimate-color": ("1.2.2", "sha512-NAbD3xLtg3069865B5CLUulp/eowPNCiDfJBxVAmA+LKLPpxU7EIEJ2+mSfWriPd+ahORWyqjRnoPVkTJopEgg=="),
    "streamline-plump-color": ("1.2.2", "sha512-nMLbsfwKt/IJCUDpndY7sW5aZsFUOhQGS2Jdeap+CAfbQMDIzsyEHqe8m3u65wM23q1jBlWoblE7oUXukcvTvw=="),
    "streamline-freehand-color": ("1.2.2", "sha512-ql3aN0gPHIClR74SkG89oykRB1LxmwhIWYDM425bVsoZRNhl2uHtNMmIs6CADrCcyhdNQwtieaj49BIT0Idu5A=="),
    "streamline-kameleon-color": ("1.2.2", "sha512-6vFS3ILSmy3w6R1v2nVolNFf9pLuUihOUqyUNVXp0HliWIR6RpJIsWue0Fc6MVri7wde+SWzMJeLAXWU3zE43g=="),
    "streamline-stickies-color": ("1.2.2", "sha512-OisPU3Q/VMAHTtJbzRa2lmK8UN+n7D5US0txeL488yrEmoALvRerzIOS8zTNiojNDghJ2/6cp0eh5IK4ezukpA=="),
    "streamline-color": ("1.2.2", "sha512-+ypc4kzeKTFbHVM2uNWFqt1iR7E4XeMTI3Wa3LcmeHLPjyk6u6e9NJqqOHUU02rpA8GaN80XHySXzX+4DuZbzA=="),
    "streamline-flex-color": ("1.2.2", "sha512-EphxHZHzxcR2B8AU7skOnq27cuOoZDzn69EzLysRkN+Nla7tyqF0eacsFCk70t2T9BhT3LBy9GgGeY3+Db2KPQ=="),
    "streamline-sharp-color": ("1.2.2", "sha512-pson8ia7zG6FuUcmDcrRWDHyWqgJhe9beEZVg4UxKZ7Xkya5UcQ2zv3w3jl01u69h0fzbY1WyhfUKDPrRyisEg=="),
    "streamline-cyber-color": ("1.2.2", "sha512-Q7Lx72uUlMGY0+nKqxAal6N3aVRRKipH/R3BEGNLuxG3A2t0N6Mh8sYX+6puJaDPcj37pEFgjM+G3n+FwM7QYw=="),
    "fluent-color": ("1.2.21", "sha512-VETjGx7BMpVsCR3HV5g5t6oBGZ92XKzIRClS5xUvDn1YHAkQTF9OyF/aFdtxYOC8JROoI1SNO/Ql6jZeK7mroA=="),
    "icon-park": ("1.2.4", "sha512-S8fVl49LG/M9hvwb7ruFGInK21AHMv3IJehOJRJgXPLE39OOCP3wbfTWjro/XzsjxRwdvX/lYdGetFOZI0TaJQ=="),
    "marketeq": ("1.2.2", "sha512-LeHw0zlwk3LJEFqTBXz1GPeLSpn2UExIYn2ywcBRb9ax3ZJtRslQNcNpz1S2dUcPM1Kj68WCqWQkJz2D5fpkmA=="),
    "flat-color-icons": ("1.2.3", "sha512-KcmJ7CY0TKFv5GuBjiS4/v++jEcNXna1jfY+yq014tnw/MN/jMI2oYpoMHGuIpYtUqDu7eove+WySnOYO8nS3w=="),
    "meteocons": ("1.2.4", "sha512-E7YV02ql5WmJgAOpXU/hoF9Mdshq73KjwR6fBxZ5SrqMJghMa3CIcRG6NQGwP4I1uBOhIjOFlAikYoPAKuT56A=="),
    "game-icons": ("1.2.4", "sha512-/HDDZxowXgDJcOEwPspUCq5RuDdl25OyZKdtxqqiPJQNTrWIym7r4StLzIVs77DyNzOWWhH5wDqwYR3WHeDfkg=="),
    "mdi": ("1.2.3", "sha512-O3cLwbDOK7NNDf2ihaQOH5F9JglnulNDFV7WprU2dSoZu3h3cWH//h74uQAB87brHmvFVxIOkuBX2sZSzYhScg=="),
}  # fmt: skip
EMOJI_SET_WORDS = ("emoji", "moji")  # no set whose name says emoji is ever fetched
ICONS_FOLDER = "icons"  # <training cache>/icons/<set>/<icon>.png


def is_icon(path: Path) -> bool:
    """Whether a drawing is a rendered icon (<...>/icons/<set>/<icon>.png)."""
    return path.parent.name in ICON_SETS and path.parent.parent.name == ICONS_FOLDER


def prepare_icons(cache: Path) -> Path:
    """Fetch every set in ICON_SETS (once) and render its icons to PNG (once per icon);
    -> the folder holding one sub-folder of PNGs per set."""
    root = cache / ICONS_FOLDER
    for name, (version, integrity) in ICON_SETS.items():
        done = root / name / ".complete"
        if done.is_file():
            continue
        icons = fetch_icon_set(name, version, integrity)
        render_icon_set(icons, root / name, seed=name)
        done.write_text(version)
    return root


def fetch_icon_set(name: str, version: str, integrity: str) -> dict:
    """The set's icons.json, from its pinned npm tarball (sha512 checked)."""
    if any(word in name for word in EMOJI_SET_WORDS):
        raise ValueError(f"{name}: emoji are held out for evaluation, never trained on")
    url = f"{REGISTRY}/@iconify-json/{name}/-/{name}-{version}.tgz"
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            data = response.read()
    except OSError as error:  # URLError, a timeout: say what was fetched and from where
        raise OSError(f"could not fetch the icon set {url} (the npm registry): {error}") from None
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != integrity:
        raise ValueError(f"{url}: sha512 {digest} is not the pinned {integrity}")
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        member = archive.extractfile("package/icons.json")
        if member is None:
            raise ValueError(f"{url}: no package/icons.json")
        return json.load(member)


def render_icon_set(icons: dict, folder: Path, seed: str) -> int:
    """Each icon of an Iconify set -> folder/<name>.png (RGBA, RENDER_SIZE on its long side);
    one-colour icons ("currentColor") in a random dark colour each. -> icons rendered."""
    import resvg_py

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    width, height = icons.get("width", 16), icons.get("height", 16)
    rendered = 0
    for name, icon in tqdm(sorted(icons["icons"].items()), desc=f"icons {folder.name}"):
        if icon.get("hidden"):
            continue
        w, h = icon.get("width", width), icon.get("height", height)
        body = icon["body"].replace("currentColor", _dark_colour(rng))
        svg = (
            f'<svg xmlns="http://www.w3.org/2000/svg" '
            f'xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="{icon.get("left", 0)} '
            f'{icon.get("top", 0)} {w} {h}" width="{w}" height="{h}">{body}</svg>'
        )
        scale = RENDER_SIZE / max(w, h)
        try:
            png = resvg_py.svg_to_bytes(
                svg_string=svg,
                width=max(1, round(w * scale)),
                height=max(1, round(h * scale)),
                skip_system_fonts=True,  # no font, so no emoji font, is drawn from
            )
        except ValueError:
            continue  # an icon resvg cannot draw: training data, skipped
        (folder / f"{name}.png").write_bytes(bytes(png))
        rendered += 1
    return rendered


def _dark_colour(rng: random.Random) -> str:
    """A colour dark or saturated enough to stand out on the light backgrounds of the views."""
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.3, 1.0), rng.uniform(0.1, 0.6))
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"
