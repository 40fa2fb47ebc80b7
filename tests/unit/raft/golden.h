/*
 * golden.h - the interpreter of the golden scenario scripts in
 * tests/unit/raft/testdata/ (format and commands: testdata/README).
 *
 * Does:     reads a scenario file (commands, comments and the output a
 *           previous run recorded), runs each command on a fresh harness
 *           network (harness.h) and writes the file as it should be: the
 *           same commands and comments, each command followed by the events
 *           it caused. The caller compares that with the file (or writes it
 *           back when regenerating).
 * Owns:     the network of one run; freed before golden_run returns.
 * Threads:  one run at a time per call; no globals.
 * Borrowed: text is read during the call.
 * Errors:   -1 with a message (line number first) in err for a script that
 *           cannot run: unknown command, bad argument, no cluster yet.
 *           A safety violation (two leaders in a term, logs or applied
 *           states that differ) is not an error: it is written into the
 *           output as a "VIOLATION:" line and *violations is counted, so it
 *           shows in the diff and the caller fails the test.
 * Limits:   GOLDEN_LINE_MAX bytes per script line.
 * Not here: file I/O and the comparison (test_raft_golden.c).
 */
#ifndef TESTS_UNIT_RAFT_GOLDEN_H
#define TESTS_UNIT_RAFT_GOLDEN_H

#include <stddef.h>

#include "base/buf.h"

#define GOLDEN_LINE_MAX 512

int golden_run(const char *text, size_t len, struct buf *out, int *violations,
               char *err, size_t errcap);

#endif
