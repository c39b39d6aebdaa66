package httpapi

import (
	"bufio"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestRouteTableMatchesOpenAPI holds the route table and openapi.yaml together: the same
// operations, in the same order. A path item that is a $ref stands for the operations of the
// path it names.
func TestRouteTableMatchesOpenAPI(t *testing.T) {
	var got []string
	for _, r := range (&Server{}).routes() {
		got = append(got, r.method+" "+regexp.MustCompile(`:(\w+)`).ReplaceAllString(r.path, "{$1}"))
	}
	want := openAPIOperations(t, "../../openapi.yaml")
	if !slices.Equal(got, want) {
		t.Errorf("route table and openapi.yaml differ:\nroutes:  %v\nopenapi: %v", got, want)
	}
}

func openAPIOperations(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pathRE := regexp.MustCompile(`^  (/\S*):\s*$`)
	methodRE := regexp.MustCompile(`^    (get|put|post|delete|patch):\s*$`)
	refRE := regexp.MustCompile(`^    \$ref: '#/paths/(\S+)'\s*$`)
	methods := map[string][]string{}
	var order []string
	var inPaths bool
	var current string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "paths:":
			inPaths = true
		case inPaths && len(line) > 0 && line[0] != ' ':
			inPaths = false
		case !inPaths:
		case pathRE.MatchString(line):
			current = pathRE.FindStringSubmatch(line)[1]
			order = append(order, current)
		case methodRE.MatchString(line):
			methods[current] = append(methods[current], strings.ToUpper(methodRE.FindStringSubmatch(line)[1]))
		case refRE.MatchString(line):
			ref := strings.NewReplacer("~1", "/", "~0", "~").Replace(refRE.FindStringSubmatch(line)[1])
			methods[current] = append(methods[current], methods[ref]...)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, p := range order {
		for _, m := range methods[p] {
			ops = append(ops, m+" "+p)
		}
	}
	return ops
}
