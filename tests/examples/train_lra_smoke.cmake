# Smoke run of examples/train_lra (cmake -P): a tiny generated ListOps set, self-pretraining for a few
# steps then fine-tuning from its checkpoint, for an S4D and a Transformer model; with MPIRUN set, the
# fine-tuning also runs on two ranks. Prints SKIPPED when the example programs were not built.
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
