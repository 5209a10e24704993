// The trainers' model instantiations split over translation units ("shards"), so that a parallel build
// compiles them side by side, the way FlashAttention gives each head size and dtype a file of its own.
//
// A trainer turns --model into a spec type and hands it to its runner, which instantiates the whole model
// for every device, precision, encoder and head: one spec costs nvcc minutes, all of them in one file kept
// a core busy for most of an hour. Here main calls examples::shards::run(runner, spec), which only declares
// the runner's entry for that spec, and the trainer ends with EXAMPLES_SHARDS_DEFINE(Runner, Specs), which
// defines the entries of this translation unit's share of the type list Specs. The build compiles the
// trainer once per shard (examples/CMakeLists.txt), with
//   LONGSEQ_SHARD undefined  the whole program in one translation unit (main and every spec);
//   LONGSEQ_SHARD 0          main only: every entry is a declaration, resolved by the linker;
//   LONGSEQ_SHARD k, 1..N    the specs at the positions p of Specs with p % N == k - 1 (N = LONGSEQ_SHARDS),
// so each listed spec is compiled in exactly one translation unit. A spec the dispatch can reach but Specs
// lacks fails examples::shards::expect_listed (the trainer's end calls its dispatch with it), and two
// listings of one spec fail EXAMPLES_SHARDS_DEFINE; both static_asserts say what to change.
#pragma once
#include <cstddef>
#include <tuple>
#include <type_traits>

#if defined(LONGSEQ_SHARD)
#if !defined(LONGSEQ_SHARDS) || LONGSEQ_SHARDS < 1 || LONGSEQ_SHARD < 0 || LONGSEQ_SHARD > LONGSEQ_SHARDS
#error "examples/shards.hpp: LONGSEQ_SHARD must lie in 0..LONGSEQ_SHARDS (LONGSEQ_SHARDS >= 1), as examples/CMakeLists.txt sets them"
#endif
// main lives in shard 0; the shares of the specs in shards 1..N.
#define EXAMPLES_SHARD_HAS_MAIN (LONGSEQ_SHARD == 0)
#define EXAMPLES_SHARD_HAS_SPECS (LONGSEQ_SHARD > 0)
#else
#define EXAMPLES_SHARD_HAS_MAIN 1
#define EXAMPLES_SHARD_HAS_SPECS 1
#endif

namespace examples::shards {

// The specs a trainer compiles, in the order that deals them out to the shards.
template <class... Specs>
struct List {
  static constexpr std::size_t size = sizeof...(Specs);
};

// Two lists as one (a trainer's specs that a build option adds).
template <class A, class B>
struct Concat;
template <class... A, class... B>
struct Concat<List<A...>, List<B...>> {
  using type = List<A..., B...>;
};
template <class A, class B>
using Join = typename Concat<A, B>::type;

template <class L, class Spec>
inline constexpr std::size_t count = 0;
template <class... Specs, class Spec>
inline constexpr std::size_t count<List<Specs...>, Spec> = (std::size_t(std::is_same_v<Spec, Specs>) + ... + 0);

template <class L>
inline constexpr bool distinct = false;
template <class... Specs>
inline constexpr bool distinct<List<Specs...>> = ((count<List<Specs...>, Specs> == 1) && ...);

// Checks that the dispatch's spec is listed; pass it to the trainer's dispatch as the model callback.
template <class L>
inline constexpr auto expect_listed = []<class Spec>(const Spec&) {
  static_assert(count<L, Spec> != 0,
                "a model spec the trainer's dispatch can reach is missing from the list it gives "
                "EXAMPLES_SHARDS_DEFINE (the spec is the template argument Spec named above): add it there, "
                "or no translation unit compiles that model");
};

// The entry main calls for one spec: runner.run(spec), or runner.run<Spec>() for a runner that takes the
// spec as a type only. Its definition is compiled only where the spec's share is (EXAMPLES_SHARDS_DEFINE).
template <class Runner, class Spec>
struct Entry {
  static void run(Runner& runner, const Spec& spec);
};

// What a shard instantiates at position I of the list when the spec there belongs to another shard: nothing.
template <std::size_t I>
struct Elsewhere {};
template <class Runner, std::size_t I>
struct Entry<Runner, Elsewhere<I>> {};

#if EXAMPLES_SHARD_HAS_SPECS
template <class Runner, class Spec>
void Entry<Runner, Spec>::run(Runner& runner, [[maybe_unused]] const Spec& spec) {
  if constexpr (requires { runner.run(spec); })
    runner.run(spec);
  else
    runner.template run<Spec>();
}
#endif

template <class Runner, class Spec>
void run(Runner& runner, const Spec& spec) {
  Entry<Runner, Spec>::run(runner, spec);
}

// The spec at position I of L when shard `part` of `parts` owns it, else Elsewhere<I>.
template <class L, std::size_t I, int Part, int Parts>
struct Owned {
  using type = Elsewhere<I>;
};
template <class... Specs, std::size_t I, int Part, int Parts>
  requires(I < sizeof...(Specs) && int(I % Parts) == Part - 1)
struct Owned<List<Specs...>, I, Part, Parts> {
  using type = std::tuple_element_t<I, std::tuple<Specs...>>;
};

// How many specs one trainer may list: the slots EXAMPLES_SHARDS_DEFINE expands.
inline constexpr std::size_t max_specs = 16;

}  // namespace examples::shards

#if defined(LONGSEQ_SHARD)
#define EXAMPLES_SHARD_PART LONGSEQ_SHARD
#define EXAMPLES_SHARD_PARTS LONGSEQ_SHARDS
#else
#define EXAMPLES_SHARD_PART 1
#define EXAMPLES_SHARD_PARTS 1
#endif

#define EXAMPLES_SHARD_SLOT(Runner, Specs, I)                                                                        \
  template struct examples::shards::Entry<                                                                           \
      Runner, typename examples::shards::Owned<Specs, I, EXAMPLES_SHARD_PART, EXAMPLES_SHARD_PARTS>::type>;

// At the end of a trainer, at namespace scope: defines this translation unit's entries (explicit
// instantiations, so main's translation unit may name them without their definitions). In shard 0 it
// only checks the list.
#if EXAMPLES_SHARD_HAS_SPECS
#define EXAMPLES_SHARDS_DEFINE(Runner, Specs)                                                                        \
  static_assert(examples::shards::distinct<Specs>, "EXAMPLES_SHARDS_DEFINE: " #Specs " lists a spec twice");          \
  static_assert(Specs::size <= examples::shards::max_specs,                                                          \
                "EXAMPLES_SHARDS_DEFINE: " #Specs " has more specs than slots; add slots here and raise max_specs");  \
  EXAMPLES_SHARD_SLOT(Runner, Specs, 0) EXAMPLES_SHARD_SLOT(Runner, Specs, 1)                                        \
  EXAMPLES_SHARD_SLOT(Runner, Specs, 2) EXAMPLES_SHARD_SLOT(Runner, Specs, 3)                                        \
  EXAMPLES_SHARD_SLOT(Runner, Specs, 4) EXAMPLES_SHARD_SLOT(Runner, Specs, 5)                                        \
  EXAMPLES_SHARD_SLOT(Runner, Specs, 6) EXAMPLES_SHARD_SLOT(Runner, Specs, 7)                                        \
  EXAMPLES_SHARD_SLOT(Runner, Specs, 8) EXAMPLES_SHARD_SLOT(Runner, Specs, 9)                                        \
  EXAMPLES_SHARD_SLOT(Runner, Specs, 10) EXAMPLES_SHARD_SLOT(Runner, Specs, 11)                                      \
  EXAMPLES_SHARD_SLOT(Runner, Specs, 12) EXAMPLES_SHARD_SLOT(Runner, Specs, 13)                                      \
  EXAMPLES_SHARD_SLOT(Runner, Specs, 14) EXAMPLES_SHARD_SLOT(Runner, Specs, 15)
#else
#define EXAMPLES_SHARDS_DEFINE(Runner, Specs)                                                                        \
  static_assert(examples::shards::distinct<Specs>, "EXAMPLES_SHARDS_DEFINE: " #Specs " lists a spec twice");
#endif
