package main

import (
	"context"
	"fmt"
	"io"
)

func load(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "casefhir load: not available in this build")
	return 2
}
