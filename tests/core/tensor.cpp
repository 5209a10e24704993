#include <doctest/doctest.h>

#include <longseq/core/arena.hpp>
#include <longseq/core/parameters.hpp>
#include <longseq/core/tensor.hpp>

#include <string>
#include <vector>

using namespace longseq;

TEST_CASE("shape, strides and views") {
  Tensor<float> t(Shape{2, 3, 4});
  CHECK(t.numel() == 24);
  auto v = t.view();
  CHECK(v.strides == Shape{12, 4, 1});
  v(1, 2, 3) = 5.0f;
  CHECK(t[23] == 5.0f);
  CHECK(v.select(1)(2, 3) == 5.0f);
  CHECK(v.slice(1, 2).shape == Shape{1, 3, 4});
  CHECK(v.reshape(Shape{6, 4})(5, 3) == 5.0f);
  CHECK(v.size(-1) == 4);
  TensorView<const float> cv = v;
  CHECK(cv(1, 2, 3) == 5.0f);
}

TEST_CASE("bad shapes throw readable errors") {
  Tensor<float> t(Shape{2, 3});
  auto v = t.view();
  CHECK_THROWS_WITH_AS(v.reshape(Shape{4, 2}), doctest::Contains("cannot reshape (2, 3) to (4, 2)"), Error);
  CHECK_THROWS_WITH_AS(expect_shape(v, Shape{3, 2}, "x"),
                       doctest::Contains("tensor 'x' has shape (2, 3), expected (3, 2)"), Error);
  CHECK_THROWS_WITH_AS(v.select(2), doctest::Contains("index 2 out of range"), Error);
  CHECK_THROWS_AS(Shape({1, -2}), Error);
  try {
    expect_rank(v, 3, "input");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("core/tensor.hpp") == std::string::npos);  // names the caller's file
    CHECK(std::string(e.what()).find("tests/core/tensor.cpp") != std::string::npos);
  }
}

TEST_CASE("arena counts then carves aligned slices") {
  Arena<> a;
  a.begin_count();
  a.take<float>(Shape{10});
  a.take<double>(Shape{3, 3});
  a.allocate();
  auto x = a.take<float>(Shape{10});
  auto y = a.take<double>(Shape{3, 3});
  CHECK(reinterpret_cast<std::uintptr_t>(x.data) % Arena<>::alignment == 0);
  CHECK(reinterpret_cast<std::uintptr_t>(y.data) % Arena<>::alignment == 0);
  CHECK_THROWS_WITH_AS(a.take<float>(Shape{1000}), doctest::Contains("workspace arena exhausted"), Error);
  a.reset();
  CHECK(a.take<float>(Shape{10}).data == x.data);
}

namespace {
struct Toy {
  Param<float> w{Shape{3, 2}}, b{Shape{2}, ParamGroup::no_decay};
  template <class F>
  void parameters(F&& f) {
    f("w", w);
    f("b", b);
  }
};
struct Outer {
  Toy a, c;
  template <class F>
  void parameters(F&& f) {
    a.parameters(prefixed("a", f));
    c.parameters(prefixed("c", f));
  }
};
}  // namespace

TEST_CASE("param store binds named slots into one buffer") {
  Outer m;
  ParamStore<float> store;
  store.bind(m);
  std::vector<std::string> names;
  for (auto& e : store.entries()) names.push_back(e.name);
  CHECK(names == std::vector<std::string>{"a.w", "a.b", "c.w", "c.b"});
  CHECK(store.count() == 16);
  m.c.w.value(2, 1) = 3.0f;
  CHECK(store.find("c.w")->param->value[5] == 3.0f);
  CHECK(m.a.b.group == ParamGroup::no_decay);
  CHECK(m.a.w.grad.data != nullptr);
}
