/*
 * kv_model_link.c - links the MVCC model and its checker (written for
 * tests/unit/kv_model/) into the crash-test program.
 *
 * The build makes one program per test directory from that directory's .c
 * files only, so the crash test compiles the model's sources here rather
 * than keeping a second copy of them.
 */
#include "tests/unit/kv_model/kv_check.c"
#include "tests/unit/kv_model/model.c"
