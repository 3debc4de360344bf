package status

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// fields lists every JSON field path of t with its JSON type, as docs/status-json.md writes them:
// "connections[].ike_sas[].spi_i string".
func fields(t reflect.Type, prefix string, out *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		path := prefix + name
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft == reflect.TypeOf(time.Time{}):
			*out = append(*out, path+" timestamp")
		case ft.Kind() == reflect.Struct:
			*out = append(*out, path+" object")
			fields(ft, path+".", out)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			*out = append(*out, path+"[] object")
			fields(ft.Elem(), path+"[].", out)
		case ft.Kind() == reflect.Slice:
			*out = append(*out, path+"[] "+jsonType(ft.Elem()))
		case ft.Kind() == reflect.Map:
			*out = append(*out, path+" map of "+jsonType(ft.Elem()))
		default:
			*out = append(*out, path+" "+jsonType(ft))
		}
	}
}

func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int64, reflect.Uint64, reflect.Uint32:
		return "number"
	}
	return t.String()
}

const schemaDoc = "../docs/status-json.md"

// TestSchemaIsDocumented fails when a field of the status schema is added, removed, renamed or
// changes type without docs/status-json.md saying so: the doc's table must list exactly the
// fields the code has, with their types.
func TestSchemaIsDocumented(t *testing.T) {
	var want []string
	fields(reflect.TypeOf(Status{}), "", &want)
	doc, err := os.ReadFile(schemaDoc)
	if err != nil {
		t.Fatal(err)
	}
	// Table rows: | `path` | type | meaning |
	row := regexp.MustCompile("(?m)^\\| `([^`]+)` \\| ([^|]+?) \\|")
	_, table, _ := strings.Cut(string(doc), "## Fields")
	var got []string
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		got = append(got, m[1]+" "+strings.TrimSpace(m[2]))
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("%s does not document the field %q", schemaDoc, w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			t.Errorf("%s documents %q, which the schema does not have", schemaDoc, g)
		}
	}
	if !strings.Contains(string(doc), fmt.Sprintf("schema_version` is %d", SchemaVersion)) {
		t.Errorf("%s does not say that schema_version is %d", schemaDoc, SchemaVersion)
	}
}

// TestEncodingConventions: the JSON a script sees follows the documented conventions: snake_case
// keys, lists never null, absent timestamps left out, hex SPIs kept as strings.
func TestEncodingConventions(t *testing.T) {
	st := Status{SchemaVersion: SchemaVersion, Connections: []Connection{{Name: "site", State: StateDown, LocalAddrs: []string{"%any"},
		RemoteAddrs: []string{"192.0.2.2"}, Proposals: []string{}, Children: []ChildConfig{}, IKESAs: []IKESA{{SPIInitiator: "00000000000000ff",
			Children: []ChildSA{{SPIIn: "0000abcd", In: Traffic{DropsByReason: map[string]uint64{}}, Out: Traffic{DropsByReason: map[string]uint64{}}}}}}}},
		Manual: []ManualSA{}, DataPlane: DataPlane{Drops: map[string]uint64{"no_sa": 0}}}
	st.Normalize()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, bad := range []string{":null", "established_at", "rekey_at", "last_failure"} {
		if strings.Contains(s, bad) {
			t.Errorf("JSON holds %q: %s", bad, s)
		}
	}
	if !regexp.MustCompile(`^[a-z0-9_"{}\[\]:,.%/ -]*$`).MatchString(strings.ReplaceAll(s, "T00:00:00Z", "")) {
		t.Errorf("JSON keys or values outside the conventions: %s", s)
	}
	for _, want := range []string{`"spi_i":"00000000000000ff"`, `"spi_in":"0000abcd"`, `"drops_by_reason":{}`, `"local_ts":[]`, `"failures":{}`} {
		if !strings.Contains(s, want) {
			t.Errorf("JSON lacks %s: %s", want, s)
		}
	}
}
