package netns

import "strings"

func joinRule(r []string) string  { return strings.Join(r, " ") }
func splitRule(r string) []string { return strings.Fields(r) }
