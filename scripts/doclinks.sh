#!/usr/bin/env bash
# Checks that every relative link in the Markdown documentation resolves: the
# file exists, and a #fragment names a heading of that file (as GitHub makes
# heading anchors). Links to other sites are not fetched.
# Usage: scripts/doclinks.sh [file.md ...]   (default: every tracked *.md)
set -euo pipefail
cd "$(dirname "$0")/.."

files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  mapfile -t files < <(git ls-files '*.md' 2>/dev/null || find . -name '*.md' -not -path './.git/*')
fi

# anchors FILE: the anchors GitHub gives the headings of FILE, one a line.
anchors() {
  awk '
    /^```/ { fence = !fence; next }
    fence || !/^#+ / { next }
    {
      h = $0; sub(/^#+ +/, "", h); h = tolower(h)
      gsub(/[^a-z0-9 _-]/, "", h); gsub(/ /, "-", h)
      n = seen[h]++; print (n ? h "-" n : h)
    }' "$1"
}

# links FILE: the link targets of FILE outside code blocks and code spans.
links() {
  awk '
    /^```/ { fence = !fence; next }
    fence { next }
    {
      line = $0; gsub(/`[^`]*`/, "", line)
      while (match(line, /\]\([^) ]+\)/)) {
        print substr(line, RSTART + 2, RLENGTH - 3)
        line = substr(line, RSTART + RLENGTH)
      }
    }' "$1"
}

bad=0
for f in "${files[@]}"; do
  dir=$(dirname "$f")
  while IFS= read -r link; do
    case "$link" in
      http://* | https://* | mailto:*) continue ;;
    esac
    path=${link%%#*}
    frag=""
    [[ "$link" == *"#"* ]] && frag=${link#*#}
    target=$f
    if [ -n "$path" ]; then
      target=$dir/$path
      if [ ! -e "$target" ]; then
        echo "$f: $link: no such file" >&2; bad=1; continue
      fi
    fi
    if [ -n "$frag" ] && [[ "$target" == *.md ]] && ! anchors "$target" | grep -qxF "$frag"; then
      echo "$f: $link: no heading with that anchor" >&2; bad=1
    fi
  done < <(links "$f")
done
[ "$bad" -eq 0 ] && echo "doclinks: every relative link of ${#files[@]} files resolves"
exit "$bad"
