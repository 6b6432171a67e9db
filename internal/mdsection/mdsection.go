// Package mdsection rewrites one generated section of a Markdown file that
// people also write in, such as BENCHMARKS.md: the text between
// <!-- name:begin --> and <!-- name:end -->. The benchmark programs and the
// lab each own a section.
package mdsection

import (
	"fmt"
	"os"
	"strings"
)

// Write replaces the section named name in the file at path, or appends it
// when the file has none. A missing file is created starting with header
// when header is not empty, and is an error otherwise.
func Write(path, name, text, header string) error {
	begin, end := "<!-- "+name+":begin -->", "<!-- "+name+":end -->"
	block := begin + "\n" + strings.TrimRight(text, "\n") + "\n" + end + "\n"
	old, err := os.ReadFile(path)
	switch {
	case os.IsNotExist(err) && header != "":
		old = []byte(header)
	case err != nil:
		return fmt.Errorf("section %s: %w", name, err)
	}
	s := string(old)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i >= 0 && j > i {
		s = s[:i] + block + strings.TrimPrefix(s[j+len(end):], "\n")
	} else {
		s = strings.TrimRight(s, "\n") + "\n\n" + block
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
