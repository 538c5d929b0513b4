#!/usr/bin/env bash
# unleash.sh GREMLINS PKG [SINCE] [gremlins flags...]
#
# Runs gremlins on the directory tree PKG (its packages and those below it),
# every covered mutant or, with SINCE, only those on the lines changed since
# the merge base of SINCE and HEAD (the working tree included), and prints
# the mutants no test killed. make mutate calls it.
#
# What gremlins v0.6.0 does, and why this script runs it as it does:
#   - It names a mutant's file relative to the directory it is given
#     (policy.go for ./csi/policy.go), but reads its --diff from
#     `git diff --merge-base SINCE`, run in its working directory, whose
#     paths are relative to the repository's root (csi/policy.go): no
#     changed line ever matched and every mutant was SKIPPED. So gremlins
#     runs in PKG, with git's diff.relative on (paths relative to PKG, and
#     only the changes under it).
#   - It takes a hunk's changed lines as one run from its first added line,
#     as many lines as the hunk adds; with git's three lines of context two
#     changes a few lines apart are one hunk, and the second change's lines
#     are missed (and lines between taken instead). diff.context=0 makes
#     every run of changed lines a hunk of its own.
#   - An empty diff means "every line changed" to gremlins: with nothing
#     changed under PKG since SINCE this script says so and stops instead.
#   - Each mutant's test run is killed after the coverage run's time times
#     the timeout coefficient; a coverage run answered from Go's test cache
#     takes a second, and every mutant then timed out. GOFLAGS=-count=1.
#   - git diff shows no untracked file: `git add -N` a new file to have its
#     mutants tested.
set -euo pipefail

if [[ $# -lt 2 || -z $2 ]]; then
	echo "usage: $0 GREMLINS PKG [SINCE] [gremlins flags...]" >&2
	exit 2
fi
gremlins=$(cd "$(dirname "$1")" && pwd)/$(basename "$1") pkg=$2 since=${3:-}
shift $(($# < 3 ? $# : 3))

cd "$pkg"

# diff.relative, diff.context: above; the others keep the output in the
# form gremlins parses whatever the user's git configuration says.
export GIT_CONFIG_COUNT=5 \
	GIT_CONFIG_KEY_0=diff.relative GIT_CONFIG_VALUE_0=true \
	GIT_CONFIG_KEY_1=diff.context GIT_CONFIG_VALUE_1=0 \
	GIT_CONFIG_KEY_2=diff.noprefix GIT_CONFIG_VALUE_2=false \
	GIT_CONFIG_KEY_3=diff.mnemonicPrefix GIT_CONFIG_VALUE_3=false \
	GIT_CONFIG_KEY_4=color.diff GIT_CONFIG_VALUE_4=false
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-count=1"

diff=()
if [[ -n $since ]]; then
	if git diff --quiet --merge-base "$since" -- .; then
		echo "make mutate: nothing under $pkg changed since $since" >&2
		exit 0
	fi
	echo "make mutate: the lines changed under $pkg since $since:" >&2
	git diff --merge-base "$since" -- . | grep -E '^(\+\+\+ |@@ )' >&2 || true
	diff=(--diff "$since")
fi

exec "$gremlins" unleash --workers 1 --timeout-coefficient 3 --invert-logical \
	--output-statuses lt "${diff[@]}" "$@" "$PWD"
