// Package perfdoc writes one component's section of docs/performance.md, leaving the other
// components' sections alone.
package perfdoc

import (
	"os"
	"strings"
)

// WriteSection replaces the "## title" section of the markdown file at path with body, or
// appends it.
func WriteSection(path, title, body string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	doc := string(old)
	if doc == "" {
		doc = "# Performance\n"
	}
	heading := "## " + title + "\n"
	section := heading + "\n" + strings.TrimRight(body, "\n") + "\n"
	if i := strings.Index(doc, heading); i >= 0 {
		end := len(doc)
		if j := strings.Index(doc[i+len(heading):], "\n## "); j >= 0 {
			end = i + len(heading) + j + 1
		}
		doc = doc[:i] + section + "\n" + doc[end:]
	} else {
		doc = strings.TrimRight(doc, "\n") + "\n\n" + section
	}
	return os.WriteFile(path, []byte(strings.TrimRight(doc, "\n")+"\n"), 0o644)
}
