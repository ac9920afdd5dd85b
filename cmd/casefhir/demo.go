package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/casefhir/casefhir/mapping/demo"
)

const demoUsage = `Usage: casefhir demo [flags]

Loads the two demo cases into a server through its FHIR API, step by step
($open-case, then the writes and $transition steps of each story), so that
their status and phase histories are real:

  bicycle-tbi       Jonas, 23, after a bicycle accident (clinical model);
                    left active in monitoring unless --complete is given
  stroke-brokerage  Margaret, 80, after a stroke, with her insurer
                    (brokerage model); replayed to its closure

Then open the case manager's app, e.g. http://127.0.0.1:8080/app/.
Running it again adds two more cases (the people are updated in place).

Flags:
`

func runDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fset, base, token := clientFlags("demo", demoUsage, getenv, stderr)
	complete := fset.Bool("complete", false, "replay every case to its closure")
	if code, ok := parseFlags(fset, args); !ok {
		return code
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "casefhir demo: unexpected argument %q\n", fset.Arg(0))
		return 2
	}
	o := demo.Options{
		Base: strings.TrimSuffix(*base, "/"), Token: *token, Complete: *complete,
		Client: &http.Client{Timeout: 2 * time.Minute},
		Progress: func(c *demo.Case, s *demo.Step) {
			if s == nil {
				fmt.Fprintf(stderr, "%s: people, organisations and the referral\n", c.Name)
				return
			}
			fmt.Fprintf(stderr, "%s: %s %s\n", c.Name, s.Name, s.Description)
		},
	}
	loaded, err := demo.Load(ctx, o)
	for _, l := range loaded {
		fmt.Fprintf(stdout, "%s: EpisodeOfCare/%s (%d steps)\n", l.Name, l.CaseID(), l.Steps)
	}
	if err != nil {
		fmt.Fprintf(stderr, "casefhir demo: %v\n", oneLine(err))
		return 1
	}
	app := strings.TrimSuffix(o.Base, "/fhir") + "/app/"
	fmt.Fprintf(stdout, "open %s\n", app)
	return 0
}
