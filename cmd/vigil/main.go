// Command vigil is the Vigil security telemetry pipeline.
package main

import (
	"os"

	"github.com/vigil-sec/vigil/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
