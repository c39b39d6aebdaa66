package httpapi

import (
	"bufio"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
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

// openAPIOperations lists openapi.yaml's operations as "METHOD /path", in the file's order.
func openAPIOperations(t *testing.T, file string) []string {
	t.Helper()
	var ops []string
	for _, p := range openAPIPaths(t, file) {
		for _, m := range p.methods {
			ops = append(ops, m+" "+p.path)
		}
	}
	return ops
}

// DocumentedStatuses maps each path of openapi.yaml, as written there, and each of its methods
// to the statuses the method's responses document (for the tests of package httpapi_test).
func DocumentedStatuses(t *testing.T) map[string]map[string][]int {
	t.Helper()
	out := map[string]map[string][]int{}
	for _, p := range openAPIPaths(t, "../../openapi.yaml") {
		out[p.path] = p.statuses
	}
	return out
}

// openAPIPath is one path of openapi.yaml: its methods in the file's order, and the statuses
// each documents.
type openAPIPath struct {
	path     string
	methods  []string
	statuses map[string][]int
}

// openAPIPaths reads the paths of openapi.yaml in the file's order. A path item that is a $ref
// stands for the path it names.
func openAPIPaths(t *testing.T, file string) []openAPIPath {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pathRE := regexp.MustCompile(`^  (/\S*):\s*$`)
	methodRE := regexp.MustCompile(`^    (get|head|put|post|delete|patch):\s*$`)
	refRE := regexp.MustCompile(`^    \$ref: '#/paths/(\S+)'\s*$`)
	statusRE := regexp.MustCompile(`^        '(\d{3})':`)
	var paths []openAPIPath
	byPath := map[string]int{}
	var inPaths bool
	var method string
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
			path := pathRE.FindStringSubmatch(line)[1]
			byPath[path] = len(paths)
			paths = append(paths, openAPIPath{path: path, statuses: map[string][]int{}})
			method = ""
		case methodRE.MatchString(line):
			method = strings.ToUpper(methodRE.FindStringSubmatch(line)[1])
			p := &paths[len(paths)-1]
			p.methods = append(p.methods, method)
		case refRE.MatchString(line):
			name := strings.NewReplacer("~1", "/", "~0", "~").Replace(refRE.FindStringSubmatch(line)[1])
			i, ok := byPath[name]
			if !ok {
				t.Fatalf("openapi.yaml: %s refers to %s, which no path before it names", paths[len(paths)-1].path, name)
			}
			ref, p := paths[i], &paths[len(paths)-1]
			p.methods = append(p.methods, ref.methods...)
			maps.Copy(p.statuses, ref.statuses)
		case method != "" && statusRE.MatchString(line):
			n, _ := strconv.Atoi(statusRE.FindStringSubmatch(line)[1])
			p := &paths[len(paths)-1]
			p.statuses[method] = append(p.statuses[method], n)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return paths
}
