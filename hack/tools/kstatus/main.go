// Command kstatus prints how GitOps tools read the status of every object in the
// YAML or JSON documents given as files (or on stdin), one JSON line per object:
//
//	sigs   kstatus from sigs.k8s.io/cli-utils (cli-utils apply, kpt)
//	flux   kstatus from Flux's fork github.com/fluxcd/cli-utils (Flux, helm --wait)
//	cel    Flux's CEL health check (Kustomization .spec.healthCheckExprs), evaluated by
//	       Flux's own evaluator, when expressions are given with -current/-failed/-in-progress
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	fluxstatus "github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/pkg/apis/kustomize"
	fluxcel "github.com/fluxcd/pkg/runtime/cel"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	status "sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type reading struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

type line struct {
	Kind string   `json:"kind"`
	Name string   `json:"name"`
	Sigs reading  `json:"sigs"`
	Flux reading  `json:"flux"`
	CEL  *reading `json:"cel,omitempty"`
}

func main() {
	var exprs kustomize.HealthCheckExpressions
	flag.StringVar(&exprs.Current, "current", "", "Flux CEL expression: Current")
	flag.StringVar(&exprs.Failed, "failed", "", "Flux CEL expression: Failed")
	flag.StringVar(&exprs.InProgress, "in-progress", "", "Flux CEL expression: InProgress")
	flag.Parse()
	var evaluator *fluxcel.StatusEvaluator
	if exprs.Current != "" {
		var err error
		evaluator, err = fluxcel.NewStatusEvaluator(&exprs)
		check(err)
	}

	inputs := [][]byte{}
	if flag.NArg() == 0 {
		data, err := io.ReadAll(os.Stdin)
		check(err)
		inputs = append(inputs, data)
	}
	for _, path := range flag.Args() {
		data, err := os.ReadFile(path)
		check(err)
		inputs = append(inputs, data)
	}
	out := json.NewEncoder(os.Stdout)
	for _, data := range inputs {
		decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var raw json.RawMessage
			if err := decoder.Decode(&raw); errors.Is(err, io.EOF) {
				break
			} else {
				check(err)
			}
			if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" {
				continue // an empty document between two ---
			}
			// Unstructured's own decoding keeps integers int64, as the API server sends them.
			u := &unstructured.Unstructured{}
			check(u.UnmarshalJSON(raw))
			sigs, err := status.Compute(u)
			check(err)
			flux, err := fluxstatus.Compute(u)
			check(err)
			result := line{
				Kind: u.GetKind(),
				Name: u.GetName(),
				Sigs: reading{Status: sigs.Status.String(), Message: sigs.Message},
				Flux: reading{Status: flux.Status.String(), Message: flux.Message},
			}
			if evaluator != nil {
				// An evaluation error is what Flux reports (and retries) too: show it.
				if cel, err := evaluator.Evaluate(context.Background(), u); err != nil {
					result.CEL = &reading{Status: "Error", Message: err.Error()}
				} else {
					result.CEL = &reading{Status: cel.Status.String(), Message: cel.Message}
				}
			}
			check(out.Encode(result))
		}
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}
