package httpapi

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"
)

// decodeTarget has fields of each kind decodeObject fills: raw, typed, with UnmarshalJSON,
// promoted from an embedded struct, and without a json name.
type decodeTarget struct {
	decodeEmbedded
	Raw     json.RawMessage `json:"raw"`
	Number  *int64          `json:"number"`
	Text    string          `json:"text,omitempty"`
	Content base64Field     `json:"content"`
	Ignored json.RawMessage `json:"-"`
}

type decodeEmbedded struct {
	Promoted json.RawMessage `json:"promoted"`
}

// FuzzDecodeObject holds decodeObject to encoding/json's reading of the same object member by
// member, whose names are exact, and of which only the last value of each name counts: each raw
// field is that value as written, whatever it holds (its parser checks it), each typed field what
// encoding/json makes of it, and a value encoding/json refuses for a typed field is an error. So
// is a typed field's value that escapes half of a UTF-16 surrogate pair alone, found here by a
// regular expression that reads the escapes from left to right. (Found by review: an earlier
// value of a typed field was decoded and checked too.)
func FuzzDecodeObject(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"raw":1}`, `{"raw":{"a":[1,"}",{"b":"\"]"}]},"RAW":2}`, `{"promoted":"x","raw":[]}`,
		`{"number":7,"Number":8,"text":"a\u0062c","content":"QUJD"}`, `{"ra\u0077":"escaped name"}`,
		`{"raw":"\\\\","text":"\\"}","number":null}`, `{"number":"not a number"}`, `{ "raw" : true , "raw" : false }`,
		`{"content":null,"text":1e3}`, `{"-":1,"Ignored":2}`, `{"number":"x","number":1}`, " \t{\"raw\":0}\n",
		`{"text":"\ud83d\ude00","raw":["\\ud800"]}`, `{"raw":{"a":"\uDBFF\uDFFF\ud800"}}`, `{"other":"\udc00","text":"x"}`,
		`{"raw":"\ud800","raw":"fine"}`, `{"promoted":"fine","promoted":["\udfff"]}`,
		`{"text":"\ud800","text":"fine"}`, `{"content":5,"content":"QUJD","number":1,"number":"x"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !json.Valid(body) || bytes.TrimLeft(body, jsonSpace)[0] != '{' {
			return // bindBody hands decodeObject valid JSON objects only
		}
		var got decodeTarget
		err := decodeObject(bytes.Trim(body, jsonSpace), &got)
		var want decodeTarget
		var wantErr bool
		last := map[string]json.RawMessage{}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.Token() // {
		for dec.More() {
			name, _ := dec.Token()
			var value json.RawMessage
			if err := dec.Decode(&value); err != nil {
				t.Fatal(err)
			}
			last[name.(string)] = value
		}
		// Only a name's last value counts, whatever the earlier ones were.
		for name, dst := range map[string]any{"number": &want.Number, "text": &want.Text, "content": &want.Content} {
			if value, ok := last[name]; ok && (json.Unmarshal(value, dst) != nil || hasLoneSurrogate(value)) {
				wantErr = true
			}
		}
		if (err != nil) != wantErr {
			t.Fatalf("%s: error %v, want one: %t", body, err, wantErr)
		}
		if err != nil {
			return
		}
		for name, dst := range map[string]*json.RawMessage{"raw": &got.Raw, "promoted": &got.Promoted} {
			if !bytes.Equal(*dst, last[name]) {
				t.Errorf("%s: field %s = %q, want %q", body, name, *dst, last[name])
			}
		}
		if (got.Number == nil) != (want.Number == nil) || got.Number != nil && *got.Number != *want.Number ||
			got.Text != want.Text || got.Content.present != want.Content.present ||
			got.Content.isString != want.Content.isString || !bytes.Equal(got.Content.text, want.Content.text) {
			t.Errorf("%s: typed fields %+v, want %+v", body, got, want)
		}
		if got.Ignored != nil {
			t.Errorf("%s: a field without a json name was set: %q", body, got.Ignored)
		}
	})
}

// surrogateEscapes reads a JSON text's escapes from left to right: a pair of surrogate halves,
// a half alone (the second group), or any other escape.
var surrogateEscapes = regexp.MustCompile(`\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|(\\u[dD][89a-fA-F][0-9a-fA-F]{2})|\\u[0-9a-fA-F]{4}|\\.`)

func hasLoneSurrogate(b []byte) bool {
	for _, m := range surrogateEscapes.FindAllSubmatchIndex(b, -1) {
		if m[2] >= 0 {
			return true
		}
	}
	return false
}

func TestLoneSurrogate(t *testing.T) {
	for body, want := range map[string]bool{
		`"plain"`: false, `"\ud83d\ude00"`: false, `"\uD83D\uDE00 and \u00e9"`: false, `"\\ud800"`: false,
		`"\\\\ud800"`: false, `["\"", "\n\ud800\udc00"]`: false, `{"a":"\udbff\udfff"}`: false,
		`"\ud800"`: true, `"\udc00"`: true, `"\ud800x"`: true, `"\ud800\n"`: true, `"\ud800\u0041"`: true,
		`"\ud800\ud800\udc00"`: true, `"\ude00\ud83d"`: true, `"\\\ud800"`: true, `{"a":["\uDFFF"]}`: true,
	} {
		if got := loneSurrogate([]byte(body)); got != want || hasLoneSurrogate([]byte(body)) != want {
			t.Errorf("loneSurrogate(%s) = %t (the expression's reading: %t), want %t", body, got, hasLoneSurrogate([]byte(body)), want)
		}
	}
}

// An embedded struct with a json name is one field, as encoding/json reads it: its own fields
// are not names of the object.
func TestDecodeObjectNamedEmbeddedStruct(t *testing.T) {
	type Inner struct {
		Value json.RawMessage `json:"value"`
	}
	var got struct {
		Inner `json:"named"`
	}
	if err := decodeObject([]byte(`{"value":1,"named":{"value":2}}`), &got); err != nil || string(got.Value) != "2" {
		t.Errorf("decodeObject = %v, value %s; want 2, from inside named", err, got.Value)
	}
}

// BenchmarkDecodeSendBody compares decodeObject with encoding/json's own reading into the same
// struct (which also takes names that match only when case is ignored), on a send's body.
func BenchmarkDecodeSendBody(b *testing.B) {
	body := []byte(`{"accommodation":"1217343000005","reservation":"bench-4npb-5","content":"Hello! We arrive around 18:00 with two children. Is late check-in possible?","attachments":[]}`)
	b.Run("decodeObject", func(b *testing.B) {
		for b.Loop() {
			var dst sendBody
			if !json.Valid(body) || decodeObject(body, &dst) != nil {
				b.Fatal("decode")
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		for b.Loop() {
			var dst sendBody
			if json.Unmarshal(body, &dst) != nil {
				b.Fatal("decode")
			}
		}
	})
}
