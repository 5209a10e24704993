// Umbrella header: the whole host library in one include (CUDA overloads come along in .cu files).
#pragma once
#include "core/arena.hpp"
#include "core/context.hpp"
#include "core/dtype.hpp"
#include "core/error.hpp"
#include "core/parameters.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "ops/ops.hpp"

#include "nn/batch_norm.hpp"
#include "nn/embedding.hpp"
#include "nn/feed_forward.hpp"
#include "nn/layer.hpp"
#include "nn/linear.hpp"
#include "nn/norm_layers.hpp"
#include "nn/pooling.hpp"
#include "nn/residual.hpp"
#include "nn/stack.hpp"

#include "ssm/ssm.hpp"

#include "attention/encoder_layer.hpp"
#include "attention/kv_cache.hpp"
#include "attention/local.hpp"
#include "attention/mha.hpp"
#include "attention/position.hpp"
#include "attention/rotary.hpp"

#include "heads/classification.hpp"
#include "heads/denoising.hpp"
#include "heads/head.hpp"
#include "heads/losses.hpp"
#include "heads/retrieval.hpp"

#include "models/encoders.hpp"
#include "models/family.hpp"
#include "models/inputs.hpp"
#include "models/model.hpp"

#include "train/adamw.hpp"
#include "train/checkpoint.hpp"
#include "train/clip.hpp"
#include "train/distributed.hpp"
#include "train/fit.hpp"
#include "train/metrics.hpp"
#include "train/schedule.hpp"
#include "train/transfer.hpp"
#if LONGSEQ_WITH_MPI
#include "train/distributed_mpi.hpp"
#endif

#include "data/batching.hpp"
#include "data/masking.hpp"
#include "data/tasks.hpp"

#include "interop/safetensors.hpp"
