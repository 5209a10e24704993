# Runs CMD with ARGS, prints its output, and fails unless CMD exited non-zero (used by the lra_data
# malformed-input tests, whose PASS_REGULAR_EXPRESSION then checks the message).
execute_process(COMMAND ${CMD} ${ARGS} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(rc EQUAL 0)
  message(FATAL_ERROR "expected a non-zero exit status")
endif()
