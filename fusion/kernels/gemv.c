/* One activation row through a float32 weight matrix: y[out] = W[out, in] . x[in] (+ bias).

   Decoding a token multiplies a single row by every weight matrix of the LM, so its speed is
   how fast the weights stream from memory. Each thread of the (shared, torch's) OpenMP team
   takes a contiguous block of rows and reads four rows at a time against one load of x, so
   memory sees four sequential streams per core. W is row-major (nn.Linear's own layout):
   no copy of the weights is needed. Built once per machine by fusion/gemv.py. */
#include <omp.h>
#include <stdint.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

static void rows_dot(const float *w, const float *x, float *y, int64_t in, int64_t r0, int64_t r1) {
#if defined(__AVX512F__)
    const int64_t tail = in & 15;
    const __mmask16 mask = (__mmask16)((1u << tail) - 1u);
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
        const float *w0 = w + r * in, *w1 = w0 + in, *w2 = w1 + in, *w3 = w2 + in;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
        int64_t i = 0;
        for (; i + 16 <= in; i += 16) {
            const __m512 xv = _mm512_loadu_ps(x + i);
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + i), xv, a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w1 + i), xv, a1);
            a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w2 + i), xv, a2);
            a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w3 + i), xv, a3);
        }
        if (tail) {
            const __m512 xv = _mm512_maskz_loadu_ps(mask, x + i);
            a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, w0 + i), xv, a0);
            a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, w1 + i), xv, a1);
            a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, w2 + i), xv, a2);
            a3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, w3 + i), xv, a3);
        }
        y[r] = _mm512_reduce_add_ps(a0);
        y[r + 1] = _mm512_reduce_add_ps(a1);
        y[r + 2] = _mm512_reduce_add_ps(a2);
        y[r + 3] = _mm512_reduce_add_ps(a3);
    }
    for (; r < r1; r++) {
        const float *w0 = w + r * in;
        __m512 a0 = _mm512_setzero_ps();
        int64_t i = 0;
        for (; i + 16 <= in; i += 16)
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + i), _mm512_loadu_ps(x + i), a0);
        if (tail)
            a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, w0 + i),
                                 _mm512_maskz_loadu_ps(mask, x + i), a0);
        y[r] = _mm512_reduce_add_ps(a0);
    }
#else
    for (int64_t r = r0; r < r1; r++) {
        const float *row = w + r * in;
        float sum = 0.f;
#pragma omp simd reduction(+ : sum)
        for (int64_t i = 0; i < in; i++) sum += row[i] * x[i];
        y[r] = sum;
    }
#endif
}

void lunettes_gemv_f32(const float *w, const float *x, const float *bias, float *y,
                       int64_t out, int64_t in) {
#pragma omp parallel
    {
        const int64_t thread = omp_get_thread_num(), threads = omp_get_num_threads();
        const int64_t per = ((out + threads - 1) / threads + 3) & ~(int64_t)3;  /* rows, x4 */
        const int64_t r0 = thread * per;
        const int64_t r1 = r0 + per < out ? r0 + per : out;
        if (r0 < r1) {
            rows_dot(w, x, y, in, r0, r1);
            if (bias)
                for (int64_t r = r0; r < r1; r++) y[r] += bias[r];
        }
    }
}
