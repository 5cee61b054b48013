// compose-spec-check loads a Compose file with compose-go, the loader `docker compose` v2 itself
// uses: the Compose Specification's JSON schema, interpolation from .env, `${VAR:?err}` checks,
// YAML anchors and merges, and the consistency checks (unknown services, networks, volumes).
// On success it prints the resolved project as JSON (what `docker compose config --format json`
// prints) for tests/compose_check.py to inspect; on failure the loader's error, exit 1.
//
//	compose-spec-check docker-compose.yml
//
// Only the .env next to the file is read, never the caller's environment, so the committed
// defaults are what is checked.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-spec-check COMPOSE_FILE")
		os.Exit(2)
	}
	file, err := filepath.Abs(os.Args[1])
	if err != nil {
		fail(err)
	}
	opts, err := cli.NewProjectOptions([]string{file},
		cli.WithWorkingDirectory(filepath.Dir(file)),
		cli.WithEnvFiles(),
		cli.WithDotEnv,
		cli.WithInterpolation(true),
	)
	if err != nil {
		fail(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	out, err := project.MarshalJSON()
	if err != nil {
		fail(err)
	}
	os.Stdout.Write(append(out, '\n'))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
