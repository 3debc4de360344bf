package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// dump renders a tree compactly so tests can compare whole trees: one line per node with its
// position.
func dump(t *Tree) string {
	var b strings.Builder
	var walk func(s *Section, indent string)
	walk = func(s *Section, indent string) {
		for _, kv := range s.Settings {
			b.WriteString(indent + kv.Key + "=" + strings.ReplaceAll(kv.Value, "\n", `\n`) + " @" + kv.File + ":" + itoa(kv.Line) + "\n")
		}
		for _, c := range s.Sections {
			b.WriteString(indent + c.Name + " { @" + c.File + ":" + itoa(c.Line) + " [" + c.Path + "]\n")
			walk(c, indent+"  ")
			b.WriteString(indent + "}\n")
		}
	}
	walk(t.Root, "")
	return b.String()
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var d []byte
	for ; n > 0; n /= 10 {
		d = append([]byte{byte('0' + n%10)}, d...)
	}
	return string(d)
}

func mustParse(t *testing.T, src string) *Tree {
	t.Helper()
	tree, err := Parse("test.conf", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return tree
}

func TestParseSyntax(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"empty", "", ""},
		{"comments only", "# nothing\n   # more\n", ""},
		{"setting", "a = b\n", "a=b @test.conf:1\n"},
		{"no final newline", "a = b", "a=b @test.conf:1\n"},
		{"empty value", "a =\nb = \n", "a= @test.conf:1\nb= @test.conf:2\n"},
		{"value trimmed", "a =    x y  \t \n", "a=x y @test.conf:1\n"},
		{"parts joined by one space", "a = x    y\tz\n", "a=x y z @test.conf:1\n"},
		{"comment after value", "a = x # y\n", "a=x @test.conf:1\n"},
		{"value may contain =", "a = b = c\n", "a=b = c @test.conf:1\n"},
		{"quoted", `a = "x  # y"` + "\n", "a=x  # y @test.conf:1\n"},
		{"quoted escapes", `a = "q\"b\\s\tt\nn\z"` + "\n", `a=q"b\s` + "\tt" + `\nnz @test.conf:1` + "\n"},
		{"quoted and word", `a = "x" y "z"` + "\n", "a=x y z @test.conf:1\n"},
		{"quoted spans lines", "a = \"line1\nline2\"\nb = c\n", `a=line1\nline2 @test.conf:1` + "\nb=c @test.conf:3\n"},
		{"escaped line break joins", "a = \"one \\\ntwo\"\nb = c\n", "a=one two @test.conf:1\nb=c @test.conf:3\n"},
		{"crlf", "a = b\r\nc {\r\n d = e\r\n}\r\n", "a=b @test.conf:1\nc { @test.conf:2 [c]\n  d=e @test.conf:3\n}\n"},
		{"section", "conn {\n  x = 1\n}\n", "conn { @test.conf:1 [conn]\n  x=1 @test.conf:2\n}\n"},
		{"one line section", "a { b = c }\n", "a { @test.conf:1 [a]\n  b=c @test.conf:1\n}\n"},
		{"nested one line", "a { b { c = d } }", "a { @test.conf:1 [a]\n  b { @test.conf:1 [a.b]\n    c=d @test.conf:1\n  }\n}\n"},
		{"brace on next line", "a\n{\n b = c\n}\n", "a { @test.conf:1 [a]\n  b=c @test.conf:3\n}\n"},
		{"brace after comment line", "a # the a section\n{\n}\n", "a { @test.conf:1 [a]\n}\n"},
		{"names with - and _", "ike-foo_1 {\n id-2 = x\n}\n", "ike-foo_1 { @test.conf:1 [ike-foo_1]\n  id-2=x @test.conf:2\n}\n"},
		{"names with % and @", "%any@x = y\n", "%any@x=y @test.conf:1\n"},
		{"last assignment wins", "a = 1\nb = 2\na = 3\n", "a=3 @test.conf:3\nb=2 @test.conf:2\n"},
		{"empty assignment clears", "a = 1\na =\n", "a= @test.conf:2\n"},
		{"sections merge", "s {\n a = 1\n t { x = 1 }\n}\nu = 0\ns {\n a = 2\n b = 3\n t { y = 2 }\n}\n",
			"u=0 @test.conf:5\ns { @test.conf:1 [s]\n  a=2 @test.conf:7\n  b=3 @test.conf:8\n  t { @test.conf:3 [s.t]\n    x=1 @test.conf:3\n    y=2 @test.conf:9\n  }\n}\n"},
		{"key and section of one name", "a = 1\na { }\n", "a=1 @test.conf:1\na { @test.conf:2 [a]\n}\n"},
		{"include as a key", "include = x\n", "include=x @test.conf:1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := dump(mustParse(t, tc.src)); got != tc.want {
				t.Errorf("tree:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		src, want string
	}{
		{"proposals\n", `test.conf:1: expected "=" or "{" after "proposals"`},
		{"a b = c\n", `test.conf:1: expected "=" or "{" after "a"`},
		{"a\n\nb {\n}\n", `test.conf:1: expected "=" or "{" after "a"`},
		{"\n\nconn1 {\n  a = b\n", `test.conf:4: section "conn1" is not closed (opened at line 3)`},
		{"a = b\n}\n", `test.conf:2: "}" without an open section`},
		{"a = \"abc\n\ndef\n", `test.conf:1: unterminated quoted string started here`},
		{"a = \"abc\\", `test.conf:1: unterminated quoted string started here`},
		{"= b\n", `test.conf:1: expected a name before "="`},
		{"{\n}\n", `test.conf:1: expected a name before "{"`},
		{"\"a\" = b\n", `test.conf:1: expected a name, not a quoted string (quotes are for values)`},
		{"a.b = c\n", `test.conf:1: "a.b" is not a valid name: names may not contain "."`},
		{"a,b = c\n", `test.conf:1: "a,b" is not a valid name: names may not contain ","`},
		{"a\x01 = c\n", `test.conf:1: "a\x01" is not a valid name: it contains a control character`},
		{"conn-a : defaults {\n}\n", `test.conf:1: section references ("conn-a : defaults") are not supported by goipsec yet: copy the settings of the referenced section into "conn-a"`},
		{"conn-a:defaults {\n}\n", `test.conf:1: section references ("conn-a:defaults") are not supported by goipsec yet: copy the settings of the referenced section into "conn-a"`},
		{"include \n", `test.conf:1: expected a file name or pattern after include`},
		{"include a b\n", `test.conf:1: unexpected text after the include pattern "a" (one pattern per include)`},
		{"include a\"b\n", `test.conf:1: unexpected quote inside the include pattern`},
		{strings.Repeat("a {", 70), `test.conf:1: sections are nested more than 64 levels deep`},
	} {
		_, err := Parse("test.conf", []byte(tc.src))
		if err == nil {
			t.Errorf("%q: no error, want %q", tc.src, tc.want)
			continue
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("%q: error %T is not *config.Error", tc.src, err)
		}
		if err.Error() != tc.want {
			t.Errorf("%q:\n got %q\nwant %q", tc.src, err, tc.want)
		}
	}
}

func TestIncludes(t *testing.T) {
	fsys := fstest.MapFS{
		"etc/swanctl/swanctl.conf":    {Data: []byte("a = main\nsection-one {\n  somevalue = before include\n  include include.conf\n}\ninclude conf.d/*.conf\ninclude \"empty.d/*.conf\"\n")},
		"etc/swanctl/include.conf":    {Data: []byte("# added to section-one\nsomevalue = asdf\nsubsection {\n  othervalue = yyy\n}\n")},
		"etc/swanctl/conf.d/b.conf":   {Data: []byte("section-two {\n  x = 12\n}\n")},
		"etc/swanctl/conf.d/a.conf":   {Data: []byte("section-one {\n  subsection {\n    othervalue = xxx\n  }\n}\n")},
		"etc/swanctl/conf.d/skip.txt": {Data: []byte("not = included\n")},
		"etc/swanctl/empty.d/README":  {Data: []byte("nothing\n")},
	}
	p := &Parser{FS: fsys}
	tree, err := p.ParseFile("/etc/swanctl/swanctl.conf")
	if err != nil {
		t.Fatal(err)
	}
	// The example of strongswan.conf(5) "INCLUDING FILES", split the same way.
	want := "a=main @/etc/swanctl/swanctl.conf:1\n" +
		"section-one { @/etc/swanctl/swanctl.conf:2 [section-one]\n" +
		"  somevalue=asdf @/etc/swanctl/include.conf:2\n" +
		"  subsection { @/etc/swanctl/include.conf:3 [section-one.subsection]\n" +
		"    othervalue=xxx @/etc/swanctl/conf.d/a.conf:3\n" +
		"  }\n" +
		"}\n" +
		"section-two { @/etc/swanctl/conf.d/b.conf:1 [section-two]\n" +
		"  x=12 @/etc/swanctl/conf.d/b.conf:2\n" +
		"}\n"
	if got := dump(tree); got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
	wantFiles := []string{"/etc/swanctl/swanctl.conf", "/etc/swanctl/include.conf", "/etc/swanctl/conf.d/a.conf", "/etc/swanctl/conf.d/b.conf"}
	if strings.Join(tree.Files, " ") != strings.Join(wantFiles, " ") {
		t.Errorf("Files = %v, want %v", tree.Files, wantFiles)
	}

	// Relative main file, relative includes.
	tree, err = (&Parser{FS: fstest.MapFS{"dir/main.conf": {Data: []byte("include sub/x.conf\n")}, "dir/sub/x.conf": {Data: []byte("k = v\n")}}}).ParseFile("dir/main.conf")
	if err != nil || dump(tree) != "k=v @dir/sub/x.conf:1\n" {
		t.Errorf("relative include: %v\n%s", err, dumpOrNil(tree))
	}
}

func dumpOrNil(t *Tree) string {
	if t == nil {
		return "<nil>"
	}
	return dump(t)
}

func TestIncludeErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files fstest.MapFS
		want  string
	}{
		{"missing file", fstest.MapFS{"main.conf": {Data: []byte("a = b\ninclude nothere.conf\n")}},
			`main.conf:2: included file "nothere.conf" does not exist`},
		{"loop to self", fstest.MapFS{"main.conf": {Data: []byte("include main.conf\n")}},
			`main.conf:1: include loop: main.conf -> main.conf`},
		{"loop via glob", fstest.MapFS{"main.conf": {Data: []byte("include *.conf\n")}},
			`main.conf:1: include loop: main.conf -> main.conf`},
		{"longer loop", fstest.MapFS{
			"main.conf":   {Data: []byte("include d/a.conf\n")},
			"d/a.conf":    {Data: []byte("\ninclude b.conf\n")},
			"d/b.conf":    {Data: []byte("include ../d/a.conf\n")},
			"unused.conf": {Data: []byte("")}},
			`d/b.conf:1: include loop: d/a.conf -> d/b.conf -> d/a.conf`},
		{"bad pattern", fstest.MapFS{"main.conf": {Data: []byte("include [.conf\n")}},
			`main.conf:1: invalid include pattern "[.conf": syntax error in pattern`},
		{"error inside included file", fstest.MapFS{"main.conf": {Data: []byte("x {\ninclude inc.conf\n}\n")}, "inc.conf": {Data: []byte("\n\n}\n")}},
			`inc.conf:3: "}" without an open section`},
		{"section not closed in included file", fstest.MapFS{"main.conf": {Data: []byte("include inc.conf\n}\n")}, "inc.conf": {Data: []byte("x {\n")}},
			`inc.conf:1: section "x" is not closed (opened at line 1)`},
		{"directory", fstest.MapFS{"main.conf": {Data: []byte("include d\n")}, "d/x": {Data: []byte("")}},
			`main.conf:1: cannot read included file "d": it is a directory`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := (&Parser{FS: tc.files}).ParseFile("main.conf")
			if err == nil || err.Error() != tc.want {
				t.Errorf("got %v\nwant %s", err, tc.want)
			}
		})
	}
	var deep fstest.MapFS = map[string]*fstest.MapFile{}
	for i := 0; i < 40; i++ {
		deep["f"+itoa(i)+".conf"] = &fstest.MapFile{Data: []byte("include f" + itoa(i+1) + ".conf\n")}
	}
	deep["f40.conf"] = &fstest.MapFile{Data: []byte("")}
	if _, err := (&Parser{FS: deep}).ParseFile("f0.conf"); err == nil || err.Error() != "f32.conf:1: includes are nested more than 32 levels deep" {
		t.Errorf("deep includes: %v", err)
	}
}

func TestParseFileOS(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "swanctl.conf"), []byte("include conf.d/*.conf\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "conf.d", "x.conf"), []byte("k = v\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tree, err := ParseFile(filepath.Join(dir, "swanctl.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if kv := tree.Root.Setting("k"); kv == nil || kv.Value != "v" || kv.File != filepath.Join(dir, "conf.d", "x.conf") {
		t.Errorf("setting from include: %+v", kv)
	}
	// An absolute include path.
	tree, err = Parse(filepath.Join(dir, "other.conf"), []byte("include "+filepath.Join(dir, "conf.d", "x.conf")+"\n"))
	if err != nil || tree.Root.Setting("k") == nil {
		t.Errorf("absolute include: %v", err)
	}
	_, err = ParseFile(filepath.Join(dir, "missing.conf"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v is not fs.ErrNotExist", err)
	}
	if want := filepath.Join(dir, "missing.conf") + ": cannot read the file: no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("missing file: %v, want %s", err, want)
	}
}

func TestErrorList(t *testing.T) {
	l := ErrorList{{File: "a", Line: 1, Msg: "x"}, {File: "a", Line: 2, Msg: "y"}}
	if l.Error() != "a:1: x\na:2: y" {
		t.Errorf("Error() = %q", l.Error())
	}
	var ce *Error
	if !errors.As(error(l), &ce) || ce.Msg != "x" {
		t.Errorf("errors.As on ErrorList = %v", ce)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "a = b\n", "a { b = c }\n", "x {\n  include y.conf\n}\n", "a = \"q\\\"\n\"\n", "a\n{\n}\n",
		"connections {\n  home {\n    proposals = aes256gcm16-prfsha256-x25519\n  }\n}\n", "}", "{", "a = \"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		files := fstest.MapFS{"y.conf": {Data: []byte("k = v\n")}, "z.conf": {Data: []byte("include y.conf\n")}}
		tree, err := (&Parser{FS: files}).Parse("main.conf", []byte(src))
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.Line < 1 {
				t.Fatalf("error without a position: %v", err)
			}
			return
		}
		// Every node has a position inside a file that was read, and names obey checkName.
		var walk func(s *Section)
		walk = func(s *Section) {
			for _, kv := range s.Settings {
				if kv.Line < 1 || checkName(kv.Key) != "" {
					t.Fatalf("bad setting %+v", kv)
				}
			}
			for _, c := range s.Sections {
				if c.Line < 1 || checkName(c.Name) != "" {
					t.Fatalf("bad section %+v", c)
				}
				walk(c)
			}
		}
		walk(tree.Root)
	})
}

// TestSectionReferencesReportEverything: a section reference does not stop the parser, so the
// other references and the other problems of the file come in the same report.
func TestSectionReferencesReportEverything(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/refs.conf"
	src := "connections {\n  a : base {\n    remote_addrs = 192.0.2.1\n    bogus = 1\n  }\n  b:base,other {\n  }\n}\n"
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("want a list of errors, got %v", err)
	}
	for _, want := range []string{path + `:2: section references ("a : base")`, path + `:4: unknown key "bogus"`, path + `:6: section references ("b:base,other")`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the report lacks %q:\n%v", want, err)
		}
	}
}
