package results

import "github.com/sessionpin/sessionpin/internal/mdsection"

// WriteSection replaces the section named name in the Markdown file path
// (between <!-- name:begin --> and <!-- name:end -->), or appends it when
// the file has none, so that a run rewrites only its own part of a file
// that people also write in. The file must exist.
func WriteSection(path, name, text string) error {
	return mdsection.Write(path, name, text, "")
}
