// Umbrella header: everything a user's translation unit needs for host models.
#pragma once
#include "core/arena.hpp"
#include "core/context.hpp"
#include "core/dtype.hpp"
#include "core/error.hpp"
#include "core/parameters.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"
