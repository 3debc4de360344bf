package config

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Tree is a parsed configuration file with its includes resolved: a root section holding
// top-level settings and sections.
type Tree struct {
	Root *Section
	// Files lists every file that was read, the main file first, in the order they were read.
	Files []string
}

// Section is a "name { ... }" block. A section opened more than once is one Section (see Parse).
type Section struct {
	Name string
	// Path is the dotted path from the root, e.g. "connections.home.children.net"; "" for the
	// root.
	Path string
	// File and Line are where the section was first opened.
	File string
	Line int
	// Settings and Sections are in the order of their first appearance.
	Settings []*Setting
	Sections []*Section

	// Indexes by name, kept by the parser, so that a file with 100,000 connections parses in
	// linear time (a section opened again, or a key set again, is found without a scan).
	sectionIdx map[string]*Section
	settingIdx map[string]*Setting
}

// Setting is a "key = value" line.
type Setting struct {
	Key   string
	Value string
	// Path is the dotted path of the key, e.g. "connections.home.proposals".
	Path string
	// File and Line are where the value in effect was assigned (the last assignment).
	File string
	Line int
}

// Section returns the subsection with the given name, or nil.
func (s *Section) Section(name string) *Section {
	if s.sectionIdx != nil {
		return s.sectionIdx[name]
	}
	for _, c := range s.Sections {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Setting returns the setting with the given key, or nil.
func (s *Section) Setting(key string) *Setting {
	if s.settingIdx != nil {
		return s.settingIdx[key]
	}
	for _, kv := range s.Settings {
		if kv.Key == key {
			return kv
		}
	}
	return nil
}

// Error is a configuration error at a place in a file. Line is 0 when the error concerns the
// whole file (it could not be read).
type Error struct {
	File string
	Line int
	Msg  string
	err  error // the underlying error, e.g. from the file system, for errors.Is
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Unwrap returns the underlying error, if any.
func (e *Error) Unwrap() error { return e.err }

// ErrorList is several configuration errors, sorted by file and line. Load returns one when a
// configuration has more than one problem, so that all can be fixed at once.
type ErrorList []*Error

func (l ErrorList) Error() string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Unwrap returns the errors of the list, so that errors.As finds an *Error.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

// Limits that keep a hostile or broken file from exhausting the stack or looping.
const (
	maxIncludeDepth = 32
	maxSectionDepth = 64
)

// Parser reads configuration files. The zero value reads from the operating system.
type Parser struct {
	// FS, when not nil, is where files are read from instead of the operating system: paths
	// use slashes and are relative to the root of FS (a leading "/" is ignored). Tests and fuzzing
	// use it to inject files.
	FS fs.FS
	// Context, when not nil, cancels parsing and loading: a reload that a newer one replaces,
	// or a daemon that stops, does not wait for a large file to be read to its end.
	Context context.Context
}

// cancelEvery is how many statements (or connections) pass between checks of Parser.Context.
const cancelEvery = 4096

// cancelled returns the context's error as a configuration error, nil while it is live.
func (p *Parser) cancelled(file string) error {
	if p.Context == nil {
		return nil
	}
	if err := p.Context.Err(); err != nil {
		return &Error{File: file, Msg: "reading stopped: " + err.Error(), err: err}
	}
	return nil
}

// ParseFile reads and parses a file from the operating system.
func ParseFile(path string) (*Tree, error) { return (&Parser{}).ParseFile(path) }

// Parse parses data as if read from the file name; includes are resolved relative to the
// directory of name on the operating system.
func Parse(name string, data []byte) (*Tree, error) { return (&Parser{}).Parse(name, data) }

// ParseFile reads and parses a file.
func (p *Parser) ParseFile(name string) (*Tree, error) {
	data, err := p.readFile(name)
	if err != nil {
		return nil, &Error{File: name, Msg: "cannot read the file: " + errText(err), err: err}
	}
	return p.Parse(name, data)
}

// Parse parses data as if read from the file name (used for positions in errors and to resolve
// relative includes).
func (p *Parser) Parse(name string, data []byte) (*Tree, error) {
	st := &parseState{parser: p, tree: &Tree{Root: &Section{File: name, Line: 1}}}
	st.tree.Files = append(st.tree.Files, name)
	if err := st.parseFile(st.tree.Root, name, data, 0); err != nil {
		if len(st.soft) == 0 {
			return nil, err
		}
		var e *Error
		if errors.As(err, &e) {
			return nil, sortErrors(append(st.soft, e), st.tree.Files)
		}
		return nil, err
	}
	if len(st.soft) > 0 {
		// The tree is complete: the caller may check it too and report everything at once.
		return st.tree, sortErrors(st.soft, st.tree.Files)
	}
	return st.tree, nil
}

// sortErrors orders errors by file (in the order files were read) and line; one error is
// returned as itself.
func sortErrors(errs ErrorList, files []string) error {
	fileIndex := func(f string) int {
		if i := slices.Index(files, f); i >= 0 {
			return i
		}
		return len(files)
	}
	slices.SortStableFunc(errs, func(a, b *Error) int {
		if c := cmp.Compare(fileIndex(a.File), fileIndex(b.File)); c != 0 {
			return c
		}
		return cmp.Compare(a.Line, b.Line)
	})
	if len(errs) == 1 {
		return errs[0]
	}
	return errs
}

// isDirError is reported when a name or include pattern matches a directory; file systems word
// this differently, so it is checked up front.
type isDirError struct{}

func (isDirError) Error() string { return "it is a directory" }

func (p *Parser) readFile(name string) ([]byte, error) {
	var info fs.FileInfo
	var err error
	if p.FS != nil {
		info, err = fs.Stat(p.FS, fsPath(name))
	} else {
		info, err = os.Stat(name)
	}
	if err == nil && info.IsDir() {
		return nil, isDirError{}
	}
	if p.FS != nil {
		return fs.ReadFile(p.FS, fsPath(name))
	}
	return os.ReadFile(name)
}

// fsPath turns a file name into an fs.FS path: slash separated, cleaned, no leading "/".
func fsPath(name string) string {
	p := strings.TrimPrefix(path.Clean("/"+name), "/")
	if p == "" {
		return "."
	}
	return p
}

// resolve returns the glob pattern for an include pattern written in file from.
func (p *Parser) resolve(from, pattern string) string {
	if p.FS != nil {
		if strings.HasPrefix(pattern, "/") {
			return pattern
		}
		return path.Join(path.Dir(from), pattern)
	}
	if filepath.IsAbs(pattern) {
		return pattern
	}
	return filepath.Join(filepath.Dir(from), pattern)
}

func (p *Parser) glob(pattern string) ([]string, error) {
	if p.FS != nil {
		matches, err := fs.Glob(p.FS, fsPath(pattern))
		if err != nil {
			return nil, err
		}
		// Keep the caller's notation: absolute stays absolute.
		if strings.HasPrefix(pattern, "/") {
			for i, m := range matches {
				matches[i] = "/" + m
			}
		}
		return matches, nil
	}
	return filepath.Glob(pattern)
}

// identity returns the name under which a file is remembered for include loop detection.
func (p *Parser) identity(name string) string {
	if p.FS != nil {
		return fsPath(name)
	}
	if abs, err := filepath.Abs(name); err == nil {
		return abs
	}
	return filepath.Clean(name)
}

func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// parseState is the state of one Parse call: the tree being built and the chain of files being
// read, for include loop detection.
type parseState struct {
	parser  *Parser
	tree    *Tree
	reading []string // identities of the files being read, outermost first
	names   []string // the same files as written, for the loop message
	// soft are errors after which parsing goes on (section references), so that one run reports
	// every problem.
	soft ErrorList
	// statements counts parsed statements, for the cancellation checks.
	statements int
}

// parseFile parses one file's content into sec. Sections must be balanced within each file.
func (st *parseState) parseFile(sec *Section, name string, data []byte, depth int) error {
	st.reading = append(st.reading, st.parser.identity(name))
	st.names = append(st.names, name)
	defer func() {
		st.reading = st.reading[:len(st.reading)-1]
		st.names = st.names[:len(st.names)-1]
	}()
	fp := &fileParser{st: st, file: name, data: data, line: 1, includeDepth: depth}
	return fp.parseBody(sec, 0, 0)
}

// fileParser scans one file. The grammar is strongSwan's settings grammar:
//
//	body    := (section | setting | include | NEWLINE)*
//	section := NAME NEWLINE* "{" body "}"
//	setting := NAME "=" value? (NEWLINE | "#" | "}" | EOF)
//	value   := (WORD | QUOTED)+        parts joined by one space
//	include := "include" SPACE+ (PATTERN | QUOTED)
//
// A "#" starts a comment to the end of the line, anywhere outside quotes.
type fileParser struct {
	st           *parseState
	file         string
	data         []byte
	pos          int
	line         int
	includeDepth int
}

func (fp *fileParser) errorf(line int, format string, args ...any) *Error {
	return &Error{File: fp.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

func (fp *fileParser) eof() bool { return fp.pos >= len(fp.data) }

func (fp *fileParser) peek() byte {
	if fp.eof() {
		return 0
	}
	return fp.data[fp.pos]
}

// skipSpace skips blanks and carriage returns, not newlines.
func (fp *fileParser) skipSpace() {
	for !fp.eof() {
		switch fp.data[fp.pos] {
		case ' ', '\t', '\r':
			fp.pos++
		default:
			return
		}
	}
}

// skipComment skips a "#" comment up to, not including, the newline.
func (fp *fileParser) skipComment() {
	for !fp.eof() && fp.data[fp.pos] != '\n' {
		fp.pos++
	}
}

// skipBlank skips blanks, comments and newlines.
func (fp *fileParser) skipBlank() {
	for {
		fp.skipSpace()
		switch fp.peek() {
		case '#':
			fp.skipComment()
		case '\n':
			fp.pos++
			fp.line++
		default:
			return
		}
	}
}

// isNameByte reports whether c may be part of a NAME token as strongSwan's lexer reads it. Which
// of these characters a name may really contain is checked afterwards, with a precise message.
func isNameByte(c byte) bool {
	switch c {
	case '#', '{', '}', '=', '"', '\r', '\n', '\t', ' ':
		return false
	}
	return true
}

// checkName applies strongSwan's rule for section names and keys: printable characters except
// . , : { } = " # and blanks. ":" would introduce a section reference, which goipsec does not
// support; "." would make the dotted paths used in messages ambiguous.
func checkName(name string) string {
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == ':':
			return fmt.Sprintf("section references (%q) are not supported by goipsec yet", name)
		case c == '.' || c == ',':
			return fmt.Sprintf("%q is not a valid name: names may not contain %q", name, string(c))
		case c < 0x20 || c == 0x7f:
			return fmt.Sprintf("%q is not a valid name: it contains a control character", name)
		}
	}
	return ""
}

func joinPath(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// parseBody parses statements into sec until the "}" closing it (openLine > 0) or the end of the
// file (openLine == 0).
func (fp *fileParser) parseBody(sec *Section, openLine, depth int) error {
	for {
		fp.skipBlank()
		if fp.eof() {
			if openLine > 0 {
				// Point at the last line of the file, not at the empty one after its final newline.
				last := fp.line
				if last > 1 && len(fp.data) > 0 && fp.data[len(fp.data)-1] == '\n' {
					last--
				}
				return fp.errorf(last, "section %q is not closed (opened at line %d)", sec.Name, openLine)
			}
			return nil
		}
		switch c := fp.peek(); c {
		case '}':
			if openLine == 0 {
				return fp.errorf(fp.line, "\"}\" without an open section")
			}
			fp.pos++
			return nil
		case '{', '=':
			return fp.errorf(fp.line, "expected a name before %q", string(c))
		case '"':
			return fp.errorf(fp.line, "expected a name, not a quoted string (quotes are for values)")
		}
		if err := fp.parseStatement(sec, depth); err != nil {
			return err
		}
		if fp.st.statements++; fp.st.statements%cancelEvery == 0 {
			if err := fp.st.parser.cancelled(fp.file); err != nil {
				return err
			}
		}
	}
}

// parseStatement parses one section, setting or include starting at a NAME.
func (fp *fileParser) parseStatement(sec *Section, depth int) error {
	line := fp.line
	start := fp.pos
	for !fp.eof() && isNameByte(fp.data[fp.pos]) {
		fp.pos++
	}
	name := string(fp.data[start:fp.pos])
	blankAfterName := fp.pos < len(fp.data) && (fp.data[fp.pos] == ' ' || fp.data[fp.pos] == '\t')
	fp.skipSpace()
	if name == "include" && blankAfterName && fp.peek() != '=' && fp.peek() != '{' {
		return fp.parseInclude(sec, line)
	}
	if i := strings.IndexByte(name, ':'); i >= 0 || fp.peek() == ':' {
		// A section reference ("name : base { ... }"): not supported, but the section itself is
		// parsed on, so the other problems of the file are reported in the same run.
		refStart := fp.pos
		if i >= 0 {
			refStart = start + i
			name = name[:i]
		}
		for !fp.eof() && fp.peek() != '{' && fp.peek() != '\n' && fp.peek() != '#' {
			fp.pos++
		}
		written := name + " " + strings.TrimSpace(string(fp.data[refStart:fp.pos]))
		if i >= 0 {
			written = strings.TrimSpace(string(fp.data[start:fp.pos]))
		}
		fp.st.soft = append(fp.st.soft, fp.errorf(line, "section references (%q) are not supported by goipsec yet: copy the settings of the referenced section into %q",
			written, name))
	}
	if msg := checkName(name); msg != "" {
		return fp.errorf(line, "%s", msg)
	}
	switch fp.peek() {
	case '=':
		fp.pos++
		value, err := fp.parseValue()
		if err != nil {
			return err
		}
		fp.setSetting(sec, name, value, line)
		return nil
	case '{':
		fp.pos++
		return fp.openSection(sec, name, line, depth)
	case '\n', '#':
		// strongSwan allows the "{" on a following line.
		save, saveLine := fp.pos, fp.line
		fp.skipBlank()
		if fp.peek() == '{' {
			fp.pos++
			return fp.openSection(sec, name, line, depth)
		}
		fp.pos, fp.line = save, saveLine
	}
	return fp.errorf(line, "expected \"=\" or \"{\" after %q", name)
}

func (fp *fileParser) setSetting(sec *Section, key, value string, line int) {
	if kv := sec.Setting(key); kv != nil {
		// The last assignment wins, as in strongSwan; the key keeps its first position.
		kv.Value, kv.File, kv.Line = value, fp.file, line
		return
	}
	kv := &Setting{Key: key, Value: value, Path: joinPath(sec.Path, key), File: fp.file, Line: line}
	sec.Settings = append(sec.Settings, kv)
	if sec.settingIdx == nil {
		sec.settingIdx = make(map[string]*Setting, len(sec.Settings))
		for _, o := range sec.Settings {
			sec.settingIdx[o.Key] = o
		}
	}
	sec.settingIdx[key] = kv
}

func (fp *fileParser) openSection(parent *Section, name string, line, depth int) error {
	if depth+1 > maxSectionDepth {
		return fp.errorf(line, "sections are nested more than %d levels deep", maxSectionDepth)
	}
	child := parent.Section(name)
	if child == nil {
		child = &Section{Name: name, Path: joinPath(parent.Path, name), File: fp.file, Line: line}
		parent.Sections = append(parent.Sections, child)
		if parent.sectionIdx == nil {
			parent.sectionIdx = make(map[string]*Section, len(parent.Sections))
			for _, o := range parent.Sections {
				parent.sectionIdx[o.Name] = o
			}
		}
		parent.sectionIdx[name] = child
	}
	return fp.parseBody(child, line, depth+1)
}

// parseValue reads a value after "=": words and quoted strings up to the end of the line, a "#"
// or a "}" (which is left for the caller). Parts are joined with one space, as strongSwan does;
// quotes keep any spacing inside them.
func (fp *fileParser) parseValue() (string, error) {
	var parts []string
	for {
		fp.skipSpace()
		switch c := fp.peek(); {
		case fp.eof() || c == '\n' || c == '#' || c == '}':
			return strings.Join(parts, " "), nil
		case c == '"':
			s, err := fp.parseQuoted()
			if err != nil {
				return "", err
			}
			parts = append(parts, s)
		default:
			start := fp.pos
			for !fp.eof() {
				c := fp.data[fp.pos]
				if c == '#' || c == '}' || c == '"' || c == '\r' || c == '\n' || c == '\t' || c == ' ' {
					break
				}
				fp.pos++
			}
			parts = append(parts, string(fp.data[start:fp.pos]))
		}
	}
}

// parseQuoted reads a double-quoted string at the current position. Escapes: \n, \r and \t; a
// backslash before a line break joins the lines; a backslash before any other character stands for
// that character (so \" and \\). A quoted string may span lines; carriage returns are dropped.
func (fp *fileParser) parseQuoted() (string, error) {
	startLine := fp.line
	fp.pos++ // opening quote
	var b strings.Builder
	for {
		if fp.eof() {
			return "", fp.errorf(startLine, "unterminated quoted string started here")
		}
		c := fp.data[fp.pos]
		fp.pos++
		switch c {
		case '"':
			return b.String(), nil
		case '\r':
		case '\n':
			fp.line++
			b.WriteByte('\n')
		case '\\':
			if fp.eof() {
				return "", fp.errorf(startLine, "unterminated quoted string started here")
			}
			e := fp.data[fp.pos]
			fp.pos++
			switch e {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case '\n':
				fp.line++
			case '\r':
				if fp.peek() == '\n' {
					fp.pos++
					fp.line++
				}
			default:
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
}

// parseInclude handles "include PATTERN" after the keyword: the pattern is resolved against the
// directory of the current file, matched as a glob, and every match is parsed into sec in sorted
// order. A pattern without wildcards must name an existing file; a pattern with wildcards may
// match nothing, as in strongSwan (so "include conf.d/*.conf" works with an empty directory).
func (fp *fileParser) parseInclude(sec *Section, line int) error {
	var pattern string
	if fp.peek() == '"' {
		s, err := fp.parseQuoted()
		if err != nil {
			return err
		}
		pattern = s
	} else {
		// Unquoted: up to a blank, "#", "}" or the line end; \" \# \} and "\ " escape those.
		var b strings.Builder
		for !fp.eof() {
			c := fp.data[fp.pos]
			if c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '#' || c == '}' {
				break
			}
			if c == '"' {
				return fp.errorf(line, "unexpected quote inside the include pattern")
			}
			if c == '\\' && fp.pos+1 < len(fp.data) && strings.IndexByte("\"#} ", fp.data[fp.pos+1]) >= 0 {
				fp.pos++
				c = fp.data[fp.pos]
			}
			b.WriteByte(c)
			fp.pos++
		}
		pattern = b.String()
	}
	fp.skipSpace()
	if c := fp.peek(); !fp.eof() && c != '\n' && c != '#' && c != '}' {
		return fp.errorf(line, "unexpected text after the include pattern %q (one pattern per include)", pattern)
	}
	if pattern == "" {
		return fp.errorf(line, "expected a file name or pattern after include")
	}
	if fp.includeDepth+1 > maxIncludeDepth {
		return fp.errorf(line, "includes are nested more than %d levels deep", maxIncludeDepth)
	}
	p := fp.st.parser
	full := p.resolve(fp.file, pattern)
	matches, err := p.glob(full)
	if err != nil {
		return fp.errorf(line, "invalid include pattern %q: %s", pattern, errText(err))
	}
	if len(matches) == 0 && !strings.ContainsAny(pattern, "*?[") {
		return fp.errorf(line, "included file %q does not exist", full)
	}
	for _, m := range matches {
		id := p.identity(m)
		for i, r := range fp.st.reading {
			if r == id {
				chain := append(append([]string(nil), fp.st.names[i:]...), m)
				return fp.errorf(line, "include loop: %s", strings.Join(chain, " -> "))
			}
		}
		data, err := p.readFile(m)
		if err != nil {
			return &Error{File: fp.file, Line: line, Msg: fmt.Sprintf("cannot read included file %q: %s", m, errText(err)), err: err}
		}
		fp.st.tree.Files = append(fp.st.tree.Files, m)
		if err := fp.st.parseFile(sec, m, data, fp.includeDepth+1); err != nil {
			return err
		}
	}
	return nil
}
