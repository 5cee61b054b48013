// compose-spec-check loads a Compose file with compose-go, the loader `docker compose` v2 itself
// uses: the Compose Specification's JSON schema, interpolation from .env, `${VAR:?err}` checks,
// YAML anchors and merges, and the consistency checks (unknown services, networks, volumes).
// On success it prints the resolved project as JSON (what `docker compose config --format json`
// prints) for tests/compose_check.py to inspect; on failure the loader's error, exit 1.
//
//	compose-spec-check docker-compose.yml
//	compose-spec-check --env-file .env --env-file .env.secure.example docker-compose.yml docker-compose.secure.yml
//
// Several files are merged in order, as `docker compose -f a -f b` merges them. Only the .env next to
// the first file is read (or, with --env-file, those files in order, later winning), never the
// caller's environment, so the committed defaults are what is checked.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	var files, envFiles []string
	for args := os.Args[1:]; len(args) > 0; args = args[1:] {
		if args[0] == "--env-file" && len(args) > 1 {
			envFiles = append(envFiles, abs(args[1]))
			args = args[1:]
			continue
		}
		files = append(files, abs(args[0]))
	}
	if len(files) == 0 {
		fmt.Fprintln(os.Stderr, "usage: compose-spec-check [--env-file FILE]... COMPOSE_FILE...")
		os.Exit(2)
	}
	opts, err := cli.NewProjectOptions(files,
		cli.WithWorkingDirectory(filepath.Dir(files[0])),
		cli.WithEnvFiles(envFiles...),
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

func abs(path string) string {
	p, err := filepath.Abs(path)
	if err != nil {
		fail(err)
	}
	return p
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
