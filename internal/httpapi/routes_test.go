package httpapi

import (
	"github.com/labstack/echo/v4"

	"github.com/prometheus/client_golang/prometheus"

	"bufio"
	"bytes"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
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

// A panic is logged once, with its stack (SECURITY.md: "the detail goes to the log once, with
// the request id (a panic's line carries its stack)"). Before this session recoverPanic logged
// the panic itself; now it only returns it, and handleError, which logs it, returns at once
// when the answer has begun (c.Response().Committed). A handler that panics after it started
// its answer (as writeDownload streams one after WriteHeader) leaves no trace of the panic in
// the log: only an INFO request line with status 200. (Found by review; no current handler is known
// to panic there, so it was latent.)
func TestPanicAfterTheAnswerBeganIsLogged(t *testing.T) {
	var logs bytes.Buffer
	s := New(nil, nil, slog.New(slog.NewJSONHandler(&logs, nil)),
		Config{MaxBodyBytes: 1 << 20, DBTimeout: time.Second}, prometheus.NewRegistry())
	s.echo.Add(http.MethodGet, "/streaming", func(c echo.Context) error {
		c.Response().WriteHeader(http.StatusOK)
		_, _ = c.Response().Write([]byte(`{"request_id":`))
		var m map[string]int
		m["boom"]++ // a bug while streaming the rest
		return nil
	})
	req := httptest.NewRequest(http.MethodGet, "/streaming", nil)
	req.Header.Set("X-Request-Id", "panic-after-commit")
	s.ServeHTTP(httptest.NewRecorder(), req)
	if !strings.Contains(logs.String(), "assignment to entry in nil map") {
		t.Errorf("a panic after the answer began left no log line naming it; logs:\n%s", logs.String())
	}
}
