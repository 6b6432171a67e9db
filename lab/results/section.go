package results

import (
	"os"
	"strings"
)

// WriteSection replaces the section named name in the Markdown file path
// (between <!-- name:begin --> and <!-- name:end -->), or appends it when
// the file has none, so that a run rewrites only its own part of a file
// that people also write in. The file must exist.
func WriteSection(path, name, text string) error {
	begin, end := "<!-- "+name+":begin -->", "<!-- "+name+":end -->"
	block := begin + "\n" + strings.TrimRight(text, "\n") + "\n" + end + "\n"
	old, err := os.ReadFile(path)
	if err != nil {
		return err
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
