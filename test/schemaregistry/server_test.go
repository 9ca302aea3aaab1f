package schemaregistry

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestJSONSchemaType checks the REST shapes for a JSON Schema, as
// Confluent's registry gives them: register with schemaType JSON, then the
// schema by id and the subject's latest version carry schemaType JSON.
func TestJSONSchemaType(t *testing.T) {
	hs := httptest.NewServer(New(Options{}))
	t.Cleanup(hs.Close)
	call := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, hs.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("%s %s: %v (%s)", method, path, err, data)
		}
		return resp.StatusCode, out
	}
	v1 := `{"type":"object","properties":{"id":{"type":"integer"}}}`
	v2 := `{"type":"object","properties":{"id":{"type":"integer"},"n":{"type":"string"}}}`
	reg := func(schema string) float64 {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"schemaType": "JSON", "schema": schema})
		code, out := call(http.MethodPost, "/subjects/orders-value/versions", string(body))
		if code != http.StatusOK {
			t.Fatalf("register: %d %v", code, out)
		}
		return out["id"].(float64)
	}
	id1, id2 := reg(v1), reg(v2)
	if id1 == id2 || reg(v1) != id1 {
		t.Fatalf("ids %v %v: want distinct and stable", id1, id2)
	}
	code, out := call(http.MethodGet, "/schemas/ids/1", "")
	if code != http.StatusOK || out["schemaType"] != "JSON" || out["schema"] != v1 {
		t.Errorf("GET /schemas/ids/1 = %d %v", code, out)
	}
	code, out = call(http.MethodGet, "/subjects/orders-value/versions/latest", "")
	if code != http.StatusOK || out["schemaType"] != "JSON" || out["schema"] != v2 || out["id"] != id2 || out["version"] != 2.0 || out["subject"] != "orders-value" {
		t.Errorf("GET latest = %d %v", code, out)
	}
	// The same text as AVRO is another schema with another id.
	body, _ := json.Marshal(map[string]string{"schema": v1})
	if _, out := call(http.MethodPost, "/subjects/other/versions", string(body)); out["id"] == id1 {
		t.Errorf("AVRO and JSON schemas with the same text share id %v", id1)
	}
	code, out = call(http.MethodGet, "/subjects/nope/versions/latest", "")
	if code != http.StatusNotFound || out["error_code"] != 40401.0 {
		t.Errorf("GET latest of unknown subject = %d %v", code, out)
	}
}
