# Smoke run of examples/train_lra (cmake -P): the resolved settings of --preset paper (--print-config),
# then a tiny generated ListOps set, self-pretraining for a few steps then fine-tuning from its
# checkpoint, for an S4D and a Transformer model, and a shortened run with the preset; with MPIRUN set,
# the fine-tuning also runs on two ranks. Prints SKIPPED when the example programs were not built.
# Variables: BIN (folder of train_lra and lra_data), WORK (scratch folder), MPIRUN (optional launcher).
foreach(exe train_lra lra_data)
  if(NOT EXISTS ${BIN}/${exe})
    message("SKIPPED: ${BIN}/${exe} was not built")
    return()
  endif()
endforeach()
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

function(run_checked name)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err WORKING_DIRECTORY ${WORK})
  message("== ${name}\n${out}${err}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name}: exit code ${rc}")
  endif()
  set(LAST_OUTPUT "${out}${err}" PARENT_SCOPE)
endfunction()

# --preset paper fills the paper's settings for (task, model, stage); flags on the command line win.
# --print-config shows the resolved settings (no data, no training). EXPECT items are regular expressions
# that must each start a line of the output.
function(expect_config name)
  cmake_parse_arguments(A "" "" "ARGS;EXPECT" ${ARGN})
  execute_process(COMMAND ${BIN}/train_lra ${A_ARGS} --print-config
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("== config ${name}\n${out}${err}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "config ${name}: exit code ${rc}")
  endif()
  foreach(e IN LISTS A_EXPECT)
    if(NOT out MATCHES "(^|\n)${e}")
      message(FATAL_ERROR "config ${name}: no line matching '${e}'")
    endif()
  endforeach()
endfunction()
expect_config(listops-s4-pretrain ARGS --task listops --model s4 --stage pretrain --preset paper
              EXPECT "preset_row = listops/s4\n" "layers = 8  \\(preset\\)" "d_model = 128 " "lr = 0\\.01 "
                     "ssm_lr = 0\\.001 " "wd = 0\\.05 " "batch = 50 " "warmup = 2000 " "epochs = 100 "
                     "schedule = constant " "mask_p = 0\\.1 " "spt_loss = ce " "l_max = 2048 "
                     "norm = batch  \\(preset\\)" "residual = post  \\(preset\\)")
expect_config(listops-s4-override ARGS --task listops --model s4 --stage pretrain --preset paper --lr 0.002 --layers 3
              EXPECT "lr = 0\\.002  \\(command line\\)" "layers = 3  \\(command line\\)" "d_model = 128  \\(preset\\)")
expect_config(listops-s4-finetune ARGS --task listops --model s4 --stage finetune --preset paper
              EXPECT "epochs = 40 " "pool = mean ")
expect_config(text-transformer-finetune ARGS --task text --model transformer --stage finetune --preset paper
              EXPECT "layers = 6 " "d_model = 512 " "heads = 8 " "ff_expand = 4 " "head_hidden = 512 " "wd = 0\\.1 "
                     "warmup = 2000 " "epochs = 65 " "mask_p = 0\\.15 " "lr = 0\\.05 ")
expect_config(image-s4-pretrain ARGS --task image --model s4 --stage pretrain --preset paper
              EXPECT "spt_loss = l1 " "mask_p = 0\\.5 " "dropout = 0\\.1 " "n_ssm = 2 " "d_model = 512 ")
expect_config(image-s4-finetune ARGS --task image --model s4 --stage finetune --preset paper
              EXPECT "schedule = cosine " "schedule_steps = 200000 ")
# The reference's S4/S4D image blocks drop inside the layer too, both masks tied over the sequence; its DLR
# rows: decay rates up to 0.1 (the layer's default), no dropout and a constant schedule on image and text,
# mean pooling on Path-X.
expect_config(image-s4d-dropout ARGS --task image --model s4d --stage scratch --preset paper
              EXPECT "dropout = 0\\.1  \\(preset\\)" "layer_dropout = 0\\.1  \\(preset\\)"
                     "tie_dropout = true  \\(preset\\)")
expect_config(image-s4-dropout-override ARGS --task image --model s4 --stage scratch --preset paper --layer-dropout 0
              EXPECT "layer_dropout = 0  \\(command line\\)" "tie_dropout = true  \\(preset\\)")
expect_config(text-s4-no-layer-dropout ARGS --task text --model s4 --stage scratch --preset paper
              EXPECT "layer_dropout = 0  \\(default\\)" "tie_dropout = false  \\(default\\)")
expect_config(image-dlr-finetune ARGS --task image --model dlr --stage finetune --preset paper
              EXPECT "dt_min = 0\\.0001 " "dt_max = 0\\.1  \\(preset\\)" "dropout = 0  \\(preset\\)"
                     "layer_dropout = 0  \\(default\\)" "schedule = constant " "schedule_steps = 0 ")
expect_config(text-dlr-scratch ARGS --task text --model dlr --stage scratch --preset paper
              EXPECT "schedule = constant " "schedule_steps = 0 " "warmup = 2000 ")
expect_config(pathx-dlr-finetune ARGS --task pathfinder --model dlr --stage finetune --preset paper --l-max 16384
              EXPECT "preset_row = pathx/dlr\n" "pool = mean  \\(preset\\)" "schedule = cosine ")
expect_config(pathx256-s4-scratch ARGS --task pathfinder --model s4 --stage scratch --preset paper --l-max 65536
              EXPECT "preset_row = pathx256/s4\n" "lr = 0\\.0001 " "batch = 16 " "pool = max " "dt_min = 0\\.0001 ")
expect_config(pathx-transformer-pretrain ARGS --task pathfinder --model transformer --stage pretrain --preset paper
                                              --l-max 16384
              EXPECT "preset_row = pathx/transformer\n" "attn_window = 4096  \\(preset\\)" "norm = layer ")
expect_config(listops-dlr-pretrain ARGS --task listops --model dlr --stage pretrain --preset paper
              EXPECT "state = 1024 " "dt_min = 0\\.0001 " "dt_max = 0\\.1 " "ssm_lr = 0\\.0001 ")
expect_config(no-preset ARGS --task listops --model s4 --stage pretrain
              EXPECT "preset = none\n" "layers = 2  \\(default\\)" "mask_p = 0\\.1 ")
# Parameter groups: dt at the global lr without decay (the reference's `dt: null`); the preset decays biases
# and norm scales as the reference does, the program's default does not.
expect_config(groups-preset ARGS --task listops --model s4 --stage pretrain --preset paper
              EXPECT "decay_norms_biases = true  \\(preset\\)" "group weight: lr = 0\\.01, weight_decay = 0\\.05 "
                     "group no_decay: lr = 0\\.01, weight_decay = 0\\.05 " "group ssm: lr = 0\\.001, weight_decay = 0 "
                     "group dt: lr = 0\\.01, weight_decay = 0 ")
expect_config(groups-default ARGS --task listops --model s4d --stage scratch --lr 0.004 --ssm-lr 0.001
              EXPECT "decay_norms_biases = false  \\(default\\)" "group no_decay: lr = 0\\.004, weight_decay = 0 "
                     "group dt: lr = 0\\.004, weight_decay = 0 " "spt_loss = ce  \\(default\\)" "init = default ")
expect_config(groups-dt-lr ARGS --task listops --model s4d --stage scratch --dt-lr 0.001 --decay-norms-biases
              EXPECT "group dt: lr = 0\\.001, weight_decay = 0 " "group no_decay: lr = 0\\.001, weight_decay = 0\\.05 ")
# Without --preset the pixel SPT loss is L1 (the reference's for images); token tasks keep cross entropy.
expect_config(image-no-preset ARGS --task image --model s4d --stage pretrain EXPECT "spt_loss = l1  \\(default\\)")
expect_config(pathfinder-no-preset ARGS --task pathfinder --model s4d --stage pretrain EXPECT "spt_loss = l1 ")
expect_config(position ARGS --task listops --model transformer --stage scratch --position rotary
              EXPECT "position = rotary  \\(command line\\)")
execute_process(COMMAND ${BIN}/train_lra --task mnist --model s4 --preset paper --print-config
                RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
if(rc EQUAL 0 OR NOT err MATCHES "no settings for --task mnist")
  message(FATAL_ERROR "--preset paper for mnist was not refused (rc ${rc}): ${err}")
endif()

run_checked(generate ${BIN}/lra_data generate --task listops --out ${WORK}/listops --n 48 --n-val 16 --n-test 16
            --min-length 16 --max-length 48 --max-depth 3 --seed 3)
set(small --task listops --data ${WORK}/listops --d-model 16 --layers 1 --state 8 --heads 2 --batch 8
          --max-steps 3 --log-every 1 --warmup 1)
foreach(model s4d transformer)
  run_checked(${model}-pretrain ${BIN}/train_lra ${small} --model ${model} --stage pretrain --out ${WORK}/${model}-spt)
  if(NOT EXISTS ${WORK}/${model}-spt/best.safetensors)
    message(FATAL_ERROR "${model}-pretrain: no ${WORK}/${model}-spt/best.safetensors")
  endif()
  run_checked(${model}-finetune ${BIN}/train_lra ${small} --model ${model} --stage finetune
              --pretrained ${WORK}/${model}-spt/best.safetensors --out ${WORK}/${model}-ft)
  if(NOT LAST_OUTPUT MATCHES "loaded backbone from [^\n]*: [1-9][0-9]* tensors loaded")
    message(FATAL_ERROR "${model}-finetune: the log does not say that the backbone was loaded")
  endif()
  if(NOT LAST_OUTPUT MATCHES "test acc")
    message(FATAL_ERROR "${model}-finetune: no test accuracy reported")
  endif()
endforeach()

# The joint objective (supervised + weight x masked denoising of the same batch), S4D and Transformer: the
# log carries the denoising loss, result.json the weight, and the checkpoint fine-tunes like an SPT one.
foreach(model s4d transformer)
  run_checked(${model}-joint ${BIN}/train_lra ${small} --model ${model} --stage joint --joint-weight 0.5
              --out ${WORK}/${model}-joint)
  if(NOT LAST_OUTPUT MATCHES "denoise loss [0-9]" OR NOT LAST_OUTPUT MATCHES "test acc")
    message(FATAL_ERROR "${model}-joint: no denoising loss or no test accuracy reported")
  endif()
  file(READ ${WORK}/${model}-joint/result.json joint_result)
  if(NOT joint_result MATCHES "\"joint_weight\": 0\.5" OR NOT joint_result MATCHES "\"stage\": \"joint\"")
    message(FATAL_ERROR "${model}-joint: result.json lacks the stage or the weight: ${joint_result}")
  endif()
  run_checked(${model}-joint-ft ${BIN}/train_lra ${small} --model ${model} --stage finetune
              --pretrained ${WORK}/${model}-joint/best.safetensors --out ${WORK}/${model}-joint-ft)
  if(NOT LAST_OUTPUT MATCHES "loaded backbone from [^\n]*: [1-9][0-9]* tensors loaded[^\n]* 4 dropped")
    message(FATAL_ERROR "${model}-joint-ft: the backbone was not loaded, or not both joint heads dropped")
  endif()
endforeach()

# The preset in a real (shortened) run: the paper's ListOps S4 recipe (BatchNorm, post-norm blocks) with a
# tiny model, fine-tuning from it (the BatchNorm running statistics transfer by name), then the
# from-scratch stage with a two-layer MLP classifier.
run_checked(preset-pretrain ${BIN}/train_lra --task listops --data ${WORK}/listops --model s4d --stage pretrain
            --preset paper --d-model 16 --layers 1 --state 8 --batch 8 --max-steps 2 --log-every 1 --out ${WORK}/preset-spt)
if(NOT LAST_OUTPUT MATCHES "preset paper: row listops/s4")
  message(FATAL_ERROR "preset-pretrain: the log does not name the preset row")
endif()
run_checked(preset-finetune ${BIN}/train_lra --task listops --data ${WORK}/listops --model s4d --stage finetune
            --preset paper --d-model 16 --layers 1 --state 8 --batch 8 --max-steps 2 --log-every 1
            --pretrained ${WORK}/preset-spt/best.safetensors --out ${WORK}/preset-ft)
if(NOT LAST_OUTPUT MATCHES "loaded backbone from [^\n]*: [1-9][0-9]* tensors loaded" OR NOT LAST_OUTPUT MATCHES "test acc")
  message(FATAL_ERROR "preset-finetune: the backbone was not loaded or no test accuracy reported")
endif()
run_checked(preset-scratch ${BIN}/train_lra --task listops --data ${WORK}/listops --model s4d --stage scratch
            --preset paper --d-model 16 --layers 1 --state 8 --batch 8 --max-steps 2 --head-hidden 8 --log-every 1
            --out ${WORK}/preset-scratch)
if(NOT LAST_OUTPUT MATCHES "test acc")
  message(FATAL_ERROR "preset-scratch: no test accuracy reported")
endif()

# Block-local attention (blocks of 16 positions, one block back and forward) trains too.
run_checked(transformer-local ${BIN}/train_lra ${small} --model transformer --stage scratch --attn-window 16
            --out ${WORK}/transformer-local)
if(NOT LAST_OUTPUT MATCHES "test acc")
  message(FATAL_ERROR "transformer-local: no test accuracy reported")
endif()

# The random-initialization ablation: the whole model redrawn (--init random), or the SSM layers only.
run_checked(s4d-random ${BIN}/train_lra ${small} --model s4d --stage scratch --init random --out ${WORK}/s4d-random)
if(NOT LAST_OUTPUT MATCHES "test acc")
  message(FATAL_ERROR "s4d-random: no test accuracy reported")
endif()
run_checked(s4d-random-mixer ${BIN}/train_lra ${small} --model s4d --stage scratch --init random-mixer
            --out ${WORK}/s4d-random-mixer)
execute_process(COMMAND ${BIN}/train_lra ${small} --model transformer --stage scratch --init random-mixer
                        --out ${WORK}/refused-mixer
                RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
if(rc EQUAL 0 OR NOT err MATCHES "--model transformer has none")
  message(FATAL_ERROR "--init random-mixer with a Transformer was not refused (rc ${rc}): ${err}")
endif()
file(READ ${WORK}/s4d-random/result.json rnd)
file(READ ${WORK}/s4d-random-mixer/result.json mix)
string(JSON lr GET "${rnd}" val_loss)
string(JSON lm GET "${mix}" val_loss)
if(lr STREQUAL lm)
  message(FATAL_ERROR "--init random and random-mixer gave the same validation loss ${lr}: the full redraw did nothing")
endif()

# Rotary attention (the paper's Table 2 Transformers) trains; an SSM with rotary positions is refused.
run_checked(transformer-rotary ${BIN}/train_lra ${small} --model transformer --stage scratch --position rotary
            --out ${WORK}/transformer-rotary)
if(NOT LAST_OUTPUT MATCHES "test acc")
  message(FATAL_ERROR "transformer-rotary: no test accuracy reported")
endif()
execute_process(COMMAND ${BIN}/train_lra ${small} --model s4d --stage scratch --position rotary --out ${WORK}/refused-rot
                RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
if(rc EQUAL 0 OR NOT err MATCHES "has no attention")
  message(FATAL_ERROR "--position rotary with S4D was not refused (rc ${rc}): ${err}")
endif()

# Learned positions: the encoder's table trains and is saved under its name.
run_checked(transformer-learned ${BIN}/train_lra ${small} --model transformer --stage scratch --position learned
            --out ${WORK}/transformer-learned)
file(STRINGS ${WORK}/transformer-learned/best.safetensors learned_names REGEX "encoder\\.position\\.weight")
if(NOT learned_names)
  message(FATAL_ERROR "--position learned: no encoder.position.weight in the checkpoint")
endif()

# Dropout inside the SSM layer and tied masks reach the model: the checkpoint records them, and each changes
# the numbers (same seed and data: with both, with the layer's per element, with neither). Out-of-range
# values and a Transformer asking for either are refused, naming the option.
set(drop ${small} --model s4d --stage scratch --dropout 0.3)
run_checked(s4d-drop-tied ${BIN}/train_lra ${drop} --layer-dropout 0.3 --tie-dropout --out ${WORK}/s4d-drop-tied)
file(STRINGS ${WORK}/s4d-drop-tied/best.safetensors tied_meta REGEX "layer_dropout")
if(NOT tied_meta MATCHES "layer_dropout[^,}]*0\\.3" OR NOT tied_meta MATCHES "tie_dropout[^,}]*true")
  message(FATAL_ERROR "--layer-dropout 0.3 --tie-dropout: not in the checkpoint's config")
endif()
run_checked(s4d-drop-element ${BIN}/train_lra ${drop} --layer-dropout 0.3 --out ${WORK}/s4d-drop-element)
run_checked(s4d-drop-residual ${BIN}/train_lra ${drop} --out ${WORK}/s4d-drop-residual)
set(drop_losses)
foreach(run tied element residual)
  file(READ ${WORK}/s4d-drop-${run}/result.json res)
  string(JSON loss GET "${res}" val_loss)
  list(FIND drop_losses "${loss}" seen)
  if(NOT seen EQUAL -1)
    message(FATAL_ERROR "s4d-drop-${run}: validation loss ${loss} equals another dropout setting's: the option "
                        "did not reach the model")
  endif()
  list(APPEND drop_losses ${loss})
endforeach()
foreach(bad "--layer-dropout;1" "--layer-dropout;-0.1" "--layer-dropout;nan")
  execute_process(COMMAND ${BIN}/train_lra --task image --model s4 ${bad} --print-config
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0 OR NOT "${out}${err}" MATCHES "--layer-dropout")
    message(FATAL_ERROR "${bad} was not refused naming the option (rc ${rc}): ${out}${err}")
  endif()
endforeach()
foreach(bad "--layer-dropout;0.1" "--tie-dropout")
  execute_process(COMMAND ${BIN}/train_lra ${small} --model transformer --stage scratch ${bad} --out ${WORK}/refused-drop
                  RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
  list(GET bad 0 flag)
  if(rc EQUAL 0 OR NOT err MATCHES "${flag}.*--model transformer")
    message(FATAL_ERROR "${bad} with a Transformer was not refused naming the option (rc ${rc}): ${err}")
  endif()
endforeach()

# A wrong checkpoint is refused with a message naming it.
execute_process(COMMAND ${BIN}/train_lra ${small} --model s4d --stage finetune
                        --pretrained ${WORK}/transformer-spt/best.safetensors --out ${WORK}/mismatch
                RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
if(rc EQUAL 0 OR NOT err MATCHES "transfer from")
  message(FATAL_ERROR "fine-tuning S4D from a Transformer checkpoint was not refused (rc ${rc}): ${err}")
endif()

if(MPIRUN)
  separate_arguments(launcher UNIX_COMMAND "${MPIRUN}")
  run_checked(mpi-finetune ${launcher} ${BIN}/train_lra ${small} --model s4d --stage finetune
              --pretrained ${WORK}/s4d-spt/best.safetensors --out ${WORK}/s4d-ft-mpi)
  if(NOT LAST_OUTPUT MATCHES "2 rank\\(s\\)")
    message(FATAL_ERROR "mpi-finetune: the run did not use 2 ranks")
  endif()
  # Same global batches on 2 ranks as on 1: the same validation loss (float summation order aside).
  file(READ ${WORK}/s4d-ft/result.json one)
  file(READ ${WORK}/s4d-ft-mpi/result.json two)
  string(JSON l1 GET "${one}" val_loss)
  string(JSON l2 GET "${two}" val_loss)
  # In millionths (cmake arithmetic is integer), equal within 2e-6.
  function(micro value out)
    string(REGEX MATCH "^([0-9]+)\\.?([0-9]*)" _ "${value}")
    string(SUBSTRING "${CMAKE_MATCH_2}000000" 0 6 frac)
    math(EXPR v "${CMAKE_MATCH_1} * 1000000 + 1${frac} - 1000000")
    set(${out} ${v} PARENT_SCOPE)
  endfunction()
  micro(${l1} m1)
  micro(${l2} m2)
  math(EXPR diff "${m1} - ${m2}")
  if(diff GREATER 2 OR diff LESS -2)
    message(FATAL_ERROR "mpi-finetune: validation loss ${l2} on 2 ranks, ${l1} on 1")
  endif()
  message("validation loss: ${l1} (1 rank), ${l2} (2 ranks)")
endif()
message("train_lra smoke: all runs passed")
