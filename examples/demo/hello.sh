#!/bin/sh
# Prints what the two builder stages produced.
echo "$(cat /app/greeting.txt) -- words.txt has $(cat /app/word-count.txt) words ($(uname -s) $(uname -m), busybox $(busybox | head -1 | cut -d' ' -f2))"
