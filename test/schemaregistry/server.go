// Package schemaregistry is a small in-memory Confluent-compatible Schema
// Registry for tests. It speaks the documented REST API for what producers
// and lakesink use:
//
//	GET  /subjects                                  subject names
//	GET  /subjects/{subject}/versions               version numbers
//	GET  /subjects/{subject}/versions/{v|latest}    {subject, version, id, schema, schemaType, references}
//	POST /subjects/{subject}/versions               register; {"id": n}
//	POST /subjects/{subject}                        look up a schema in a subject
//	GET  /schemas/ids/{id}                          {schema, schemaType, references}
//	GET  /schemas/types                             ["AVRO","PROTOBUF","JSON"]
//
// Ids are global and stable: registering the same schema text, type and
// references again (in any subject) returns the same id, as Confluent's
// registry does. Schemas are not parsed and compatibility is not checked.
// Errors are {"error_code": ..., "message": ...} with Confluent's codes
// (40401 subject not found, 40402 version not found, 40403 schema not
// found). The Server is safe for concurrent use.
package schemaregistry

import (
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Reference is a schema reference.
type Reference struct {
	Name    string `json:"name"`
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

type schema struct {
	Schema     string      `json:"schema"`
	Type       string      `json:"schemaType,omitempty"`
	References []Reference `json:"references,omitempty"`
}

func (s schema) key() string {
	b, _ := json.Marshal(schema{Schema: s.Schema, Type: typeOf(s.Type), References: s.References})
	return string(b)
}

func typeOf(t string) string {
	if t == "" {
		return "AVRO"
	}
	return t
}

// Options configure a Server.
type Options struct {
	// Username and Password, when set, require HTTP basic auth.
	Username, Password string
}

// Server is the registry's state and HTTP handler.
type Server struct {
	opts Options

	mu       sync.Mutex
	ids      []schema         // id-1 -> schema
	byKey    map[string]int   // schema key -> id
	subjects map[string][]int // subject -> ids of versions 1..n
	requests int
}

// New returns an empty registry.
func New(opts Options) *Server {
	return &Server{opts: opts, byKey: map[string]int{}, subjects: map[string][]int{}}
}

// Requests returns how many requests the server has answered (cache tests).
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Register registers a schema directly (no HTTP) and returns its id.
func (s *Server) Register(subject, schemaType, text string, refs ...Reference) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, _ := s.register(subject, schema{Schema: text, Type: schemaType, References: refs})
	return id
}

func (s *Server) register(subject string, sc schema) (id, version int) {
	if sc.Type == "AVRO" {
		sc.Type = ""
	}
	k := sc.key()
	id, ok := s.byKey[k]
	if !ok {
		s.ids = append(s.ids, sc)
		id = len(s.ids)
		s.byKey[k] = id
	}
	vs := s.subjects[subject]
	if i := slices.Index(vs, id); i >= 0 {
		return id, i + 1
	}
	s.subjects[subject] = append(vs, id)
	return id, len(vs) + 1
}

type apiError struct {
	Code    int    `json:"error_code"`
	Message string `json:"message"`
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status, code int, msg string) {
	reply(w, status, apiError{Code: code, Message: msg})
}

// ServeHTTP implements the REST API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.opts.Username != "" || s.opts.Password != "" {
		u, p, ok := r.BasicAuth()
		if !ok || u != s.opts.Username || p != s.opts.Password {
			w.Header().Set("WWW-Authenticate", `Basic realm="schema-registry"`)
			fail(w, http.StatusUnauthorized, 401, "Unauthorized")
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == http.MethodGet && len(parts) == 1 && parts[0] == "subjects":
		names := make([]string, 0, len(s.subjects))
		for k := range s.subjects {
			names = append(names, k)
		}
		sort.Strings(names)
		reply(w, http.StatusOK, names)
	case r.Method == http.MethodGet && len(parts) == 2 && parts[0] == "schemas" && parts[1] == "types":
		reply(w, http.StatusOK, []string{"AVRO", "PROTOBUF", "JSON"})
	case r.Method == http.MethodGet && len(parts) == 3 && parts[0] == "schemas" && parts[1] == "ids":
		id, err := strconv.Atoi(parts[2])
		if err != nil || id < 1 || id > len(s.ids) {
			fail(w, http.StatusNotFound, 40403, "Schema "+parts[2]+" not found")
			return
		}
		reply(w, http.StatusOK, s.ids[id-1])
	case len(parts) >= 2 && parts[0] == "subjects":
		s.subject(w, r, parts[1], parts[2:])
	default:
		fail(w, http.StatusNotFound, 404, "HTTP 404 Not Found")
	}
}

func (s *Server) subject(w http.ResponseWriter, r *http.Request, subject string, rest []string) {
	vs, known := s.subjects[subject]
	switch {
	case r.Method == http.MethodPost && len(rest) == 1 && rest[0] == "versions":
		var sc schema
		if err := json.NewDecoder(r.Body).Decode(&sc); err != nil || sc.Schema == "" {
			fail(w, http.StatusUnprocessableEntity, 42201, "Invalid schema")
			return
		}
		switch typeOf(sc.Type) {
		case "AVRO", "PROTOBUF", "JSON":
		default:
			fail(w, http.StatusUnprocessableEntity, 42201, "Invalid schema type "+sc.Type)
			return
		}
		id, _ := s.register(subject, sc)
		reply(w, http.StatusOK, map[string]int{"id": id})
	case r.Method == http.MethodPost && len(rest) == 0:
		var sc schema
		if err := json.NewDecoder(r.Body).Decode(&sc); err != nil {
			fail(w, http.StatusUnprocessableEntity, 42201, "Invalid schema")
			return
		}
		if sc.Type == "AVRO" {
			sc.Type = ""
		}
		id, ok := s.byKey[sc.key()]
		if !known {
			fail(w, http.StatusNotFound, 40401, "Subject '"+subject+"' not found.")
			return
		}
		i := slices.Index(vs, id)
		if !ok || i < 0 {
			fail(w, http.StatusNotFound, 40403, "Schema not found")
			return
		}
		s.version(w, subject, i+1, id)
	case !known:
		fail(w, http.StatusNotFound, 40401, "Subject '"+subject+"' not found.")
	case r.Method == http.MethodGet && len(rest) == 1 && rest[0] == "versions":
		out := make([]int, len(vs))
		for i := range vs {
			out[i] = i + 1
		}
		reply(w, http.StatusOK, out)
	case r.Method == http.MethodGet && len(rest) == 2 && rest[0] == "versions":
		v := len(vs)
		if rest[1] != "latest" {
			n, err := strconv.Atoi(rest[1])
			if err != nil || n < 1 || n > len(vs) {
				fail(w, http.StatusNotFound, 40402, "Version "+rest[1]+" not found.")
				return
			}
			v = n
		}
		s.version(w, subject, v, vs[v-1])
	default:
		fail(w, http.StatusNotFound, 404, "HTTP 404 Not Found")
	}
}

func (s *Server) version(w http.ResponseWriter, subject string, version, id int) {
	sc := s.ids[id-1]
	reply(w, http.StatusOK, struct {
		Subject string `json:"subject"`
		Version int    `json:"version"`
		ID      int    `json:"id"`
		schema
	}{subject, version, id, sc})
}
