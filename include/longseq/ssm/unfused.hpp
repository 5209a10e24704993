// LONGSEQ_UNFUSED: a host function compiled once and evaluated as written, every product rounded on its own,
// so that its bits do not depend on the translation unit or the calls around it.
#pragma once

// Why: GCC contracts a * b + c into one fused multiply-add wherever its optimizers bring the pair together
// (-ffp-contract=fast, its default for C++ on a CPU with FMA, e.g. -march=native), and its vectorizer packs a
// complex product into vmulpd + vfmaddsub even under -ffp-contract=off (GCC 12). Which of these happens to a
// function depends on what else was inlined into it, and that on the translation unit: one source gave
// two results in the last bits, and a noinline function alone did not prevent it (its own callees still
// varied). The per-mode maths of the diagonal kernels (discretization, diagonal forms and their backward)
// is O(modes) per call, so it runs unfused and scalar at no measurable cost; the O(modes x length)
// Vandermonde sums keep their FMAs (their noinline bodies are the same in every unit).
// Clang contracts only within one source expression, which inlining cannot change.
#if defined(__GNUC__) && !defined(__clang__)
#define LONGSEQ_UNFUSED [[gnu::noinline, gnu::optimize("fp-contract=off", "no-tree-vectorize")]]
#else
#define LONGSEQ_UNFUSED [[gnu::noinline]]
#endif
