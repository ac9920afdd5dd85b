package fhirpath

import (
	"fmt"
	"strconv"
	"strings"
)

// kind is the kind of an expression node.
type kind int

const (
	kIdent  kind = iota // a member name or type name (name)
	kThis               // $this
	kString             // string literal (str)
	kNumber             // number literal (str holds the text)
	kBool               // true / false (b)
	kEmpty              // {}
	kInvoke             // left.name or left.fn(args): left is args[0] (nil at path start)
	kIndex              // args[0][args[1]]
	kBinary             // args[0] op args[1]
	kTypeOp             // args[0] is/as name
	kUnary              // op args[0] (unary minus/plus)
)

type node struct {
	kind kind
	name string  // identifier, function or type name, or operator
	str  string  // literal text
	b    bool    // boolean literal
	call bool    // kInvoke: a function call (with args)
	args []*node // operands; for kInvoke args[0] is the receiver (may be nil), the rest are call arguments
}

// Expr is a compiled FHIRPath expression. It is immutable and safe for
// concurrent use.
type Expr struct {
	src  string
	root *node
}

// String returns the source text.
func (e *Expr) String() string { return e.src }

// SyntaxError reports a malformed expression.
type SyntaxError struct {
	Pos int
	Msg string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("fhirpath: %s at offset %d", e.Msg, e.Pos) }

// maxDepth bounds the nesting of parsed expressions.
const maxDepth = 100

// Parse compiles a FHIRPath expression of the supported subset.
func Parse(src string) (*Expr, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	n, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	if p.peek().typ != tEOF {
		return nil, &SyntaxError{Pos: p.peek().pos, Msg: "unexpected " + strconv.Quote(p.peek().text)}
	}
	return &Expr{src: src, root: n}, nil
}

// MustParse is Parse that panics on error, for expressions known at
// compile time.
func MustParse(src string) *Expr {
	e, err := Parse(src)
	if err != nil {
		panic(err)
	}
	return e
}

type tokType int

const (
	tEOF tokType = iota
	tIdent
	tString
	tNumber
	tOp     // operators and punctuation
	tDollar // $this, $index, $total
	tPercent
)

type token struct {
	typ  tokType
	text string
	pos  int
}

func lex(s string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '/' && i+1 < len(s) && s[i+1] == '/':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case isIdentStart(c):
			j := i + 1
			for j < len(s) && isIdentPart(s[j]) {
				j++
			}
			toks = append(toks, token{tIdent, s[i:j], i})
			i = j
		case c == '`':
			j := strings.IndexByte(s[i+1:], '`')
			if j < 0 {
				return nil, &SyntaxError{Pos: i, Msg: "unterminated delimited identifier"}
			}
			toks = append(toks, token{tIdent, s[i+1 : i+1+j], i})
			i += j + 2
		case c == '\'':
			var b strings.Builder
			j := i + 1
			closed := false
			for j < len(s) {
				if s[j] == '\\' && j+1 < len(s) {
					switch s[j+1] {
					case 'n':
						b.WriteByte('\n')
					case 't':
						b.WriteByte('\t')
					case 'r':
						b.WriteByte('\r')
					case 'f':
						b.WriteByte('\f')
					case 'u':
						if j+5 < len(s) {
							if r, err := strconv.ParseUint(s[j+2:j+6], 16, 32); err == nil {
								b.WriteRune(rune(r))
								j += 6
								continue
							}
						}
						return nil, &SyntaxError{Pos: j, Msg: "bad unicode escape"}
					default:
						b.WriteByte(s[j+1])
					}
					j += 2
					continue
				}
				if s[j] == '\'' {
					closed = true
					break
				}
				b.WriteByte(s[j])
				j++
			}
			if !closed {
				return nil, &SyntaxError{Pos: i, Msg: "unterminated string"}
			}
			toks = append(toks, token{tString, b.String(), i})
			i = j + 1
		case c >= '0' && c <= '9':
			j := i + 1
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			if j+1 < len(s) && s[j] == '.' && s[j+1] >= '0' && s[j+1] <= '9' {
				j++
				for j < len(s) && s[j] >= '0' && s[j] <= '9' {
					j++
				}
			}
			toks = append(toks, token{tNumber, s[i:j], i})
			i = j
		case c == '$' || c == '%':
			j := i + 1
			for j < len(s) && isIdentPart(s[j]) {
				j++
			}
			if j == i+1 {
				return nil, &SyntaxError{Pos: i, Msg: "bad variable"}
			}
			typ := tDollar
			if c == '%' {
				typ = tPercent
			}
			toks = append(toks, token{typ, s[i+1 : j], i})
			i = j
		default:
			two := ""
			if i+1 < len(s) {
				two = s[i : i+2]
			}
			switch two {
			case "!=", "<=", ">=", "!~":
				toks = append(toks, token{tOp, two, i})
				i += 2
				continue
			}
			switch c {
			case '.', '(', ')', '[', ']', '{', '}', ',', '|', '=', '<', '>', '~', '+', '-', '*', '/', '&':
				toks = append(toks, token{tOp, string(c), i})
				i++
			default:
				return nil, &SyntaxError{Pos: i, Msg: "unexpected character"}
			}
		}
	}
	toks = append(toks, token{tEOF, "", len(s)})
	return toks, nil
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentPart(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

type parser struct {
	toks  []token
	i     int
	depth int
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.typ != tEOF {
		p.i++
	}
	return t
}

func (p *parser) isOp(s string) bool {
	t := p.peek()
	return t.typ == tOp && t.text == s
}

func (p *parser) expect(s string) error {
	if !p.isOp(s) {
		return &SyntaxError{Pos: p.peek().pos, Msg: "expected " + strconv.Quote(s)}
	}
	p.next()
	return nil
}

// binary operator precedence, lowest first (FHIRPath spec §6 operator precedence).
var precedence = map[string]int{
	"implies": 1,
	"or":      2, "xor": 2,
	"and": 3,
	"in":  4, "contains": 4,
	"=": 5, "~": 5, "!=": 5, "!~": 5,
	"<": 6, ">": 6, "<=": 6, ">=": 6,
	"|":  7,
	"is": 8, "as": 8,
	"+": 9, "-": 9, "&": 9,
	"*": 10, "/": 10, "div": 10, "mod": 10,
}

// binop returns the binary operator at the cursor, if any.
func (p *parser) binop() (string, int) {
	t := p.peek()
	switch t.typ {
	case tOp, tIdent:
		if pr, ok := precedence[t.text]; ok {
			return t.text, pr
		}
	}
	return "", 0
}

func (p *parser) expr(minPrec int) (*node, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		return nil, &SyntaxError{Pos: p.peek().pos, Msg: "expression nested too deeply"}
	}
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		op, pr := p.binop()
		if op == "" || pr <= minPrec {
			return left, nil
		}
		p.next()
		if op == "is" || op == "as" {
			name, err := p.typeSpec()
			if err != nil {
				return nil, err
			}
			left = &node{kind: kTypeOp, name: op, str: name, args: []*node{left}}
			continue
		}
		right, err := p.expr(pr)
		if err != nil {
			return nil, err
		}
		left = &node{kind: kBinary, name: op, args: []*node{left, right}}
	}
}

// typeSpec reads a (possibly qualified) type name: Quantity, FHIR.Quantity, System.String.
func (p *parser) typeSpec() (string, error) {
	t := p.next()
	if t.typ != tIdent {
		return "", &SyntaxError{Pos: t.pos, Msg: "expected type name"}
	}
	name := t.text
	if p.isOp(".") && p.toks[p.i+1].typ == tIdent {
		p.next()
		name = p.next().text // drop the namespace
	}
	return name, nil
}

func (p *parser) unary() (*node, error) {
	if p.isOp("-") || p.isOp("+") {
		op := p.next().text
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > maxDepth {
			return nil, &SyntaxError{Pos: p.peek().pos, Msg: "expression nested too deeply"}
		}
		n, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &node{kind: kUnary, name: op, args: []*node{n}}, nil
	}
	return p.postfix()
}

func (p *parser) postfix() (*node, error) {
	n, err := p.primary()
	if err != nil {
		return nil, err
	}
	for {
		switch {
		case p.isOp("."):
			p.next()
			t := p.next()
			if t.typ != tIdent {
				return nil, &SyntaxError{Pos: t.pos, Msg: "expected name after '.'"}
			}
			inv, err := p.invocation(n, t.text)
			if err != nil {
				return nil, err
			}
			n = inv
		case p.isOp("["):
			p.next()
			idx, err := p.expr(0)
			if err != nil {
				return nil, err
			}
			if err := p.expect("]"); err != nil {
				return nil, err
			}
			n = &node{kind: kIndex, args: []*node{n, idx}}
		default:
			return n, nil
		}
	}
}

// invocation parses name or name(args) applied to recv (nil at path start).
func (p *parser) invocation(recv *node, name string) (*node, error) {
	n := &node{kind: kInvoke, name: name, args: []*node{recv}}
	if !p.isOp("(") {
		return n, nil
	}
	pos := p.peek().pos
	p.next()
	n.call = true
	arity, ok := functions[name]
	if !ok {
		return nil, &SyntaxError{Pos: pos, Msg: "unsupported function " + strconv.Quote(name)}
	}
	if p.isOp(")") {
		p.next()
		if arity[0] > 0 {
			return nil, &SyntaxError{Pos: pos, Msg: "too few arguments to " + name}
		}
		return n, nil
	}
	for {
		var arg *node
		var err error
		if name == "as" || name == "is" || name == "ofType" {
			var tn string
			tn, err = p.typeSpec()
			arg = &node{kind: kIdent, name: tn}
		} else {
			arg, err = p.expr(0)
		}
		if err != nil {
			return nil, err
		}
		n.args = append(n.args, arg)
		if p.isOp(",") {
			p.next()
			continue
		}
		if err := p.expect(")"); err != nil {
			return nil, err
		}
		if got := len(n.args) - 1; got < arity[0] || got > arity[1] {
			return nil, &SyntaxError{Pos: pos, Msg: "wrong number of arguments to " + name}
		}
		return n, nil
	}
}

func (p *parser) primary() (*node, error) {
	t := p.next()
	switch t.typ {
	case tIdent:
		switch t.text {
		case "true", "false":
			return &node{kind: kBool, b: t.text == "true"}, nil
		}
		return p.invocation(nil, t.text)
	case tString:
		return &node{kind: kString, str: t.text}, nil
	case tNumber:
		return &node{kind: kNumber, str: t.text}, nil
	case tDollar:
		if t.text != "this" {
			return nil, &SyntaxError{Pos: t.pos, Msg: "unsupported variable $" + t.text}
		}
		return &node{kind: kThis}, nil
	case tPercent:
		switch t.text {
		case "resource", "context", "rootResource":
			return &node{kind: kThis, name: "%" + t.text}, nil
		}
		return nil, &SyntaxError{Pos: t.pos, Msg: "unsupported variable %" + t.text}
	case tOp:
		switch t.text {
		case "(":
			n, err := p.expr(0)
			if err != nil {
				return nil, err
			}
			if err := p.expect(")"); err != nil {
				return nil, err
			}
			return n, nil
		case "{":
			if err := p.expect("}"); err != nil {
				return nil, err
			}
			return &node{kind: kEmpty}, nil
		}
	}
	if t.typ == tEOF {
		return nil, &SyntaxError{Pos: t.pos, Msg: "unexpected end of expression"}
	}
	return nil, &SyntaxError{Pos: t.pos, Msg: "unexpected " + strconv.Quote(t.text)}
}
