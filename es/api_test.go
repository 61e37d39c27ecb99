package es_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"strings"
	"testing"
)

// No type of the generated db package, nor of internal packages, appears in the exported API:
// rows are converted to public types by hand.
func TestExportedAPIHidesGeneratedTypes(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	private := map[string]bool{"db": true, "sqltmpl": true}
	check := func(where string, n ast.Node) {
		ast.Inspect(n, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && private[id.Name] {
					t.Errorf("%s exposes %s.%s (%s)", where, id.Name, sel.Sel.Name, fset.Position(sel.Pos()))
				}
			}
			return true
		})
	}
	checked := 0
	for _, pkg := range pkgs {
		for _, f := range pkg.Files {
			for _, decl := range f.Decls {
				switch d := decl.(type) {
				case *ast.FuncDecl:
					if d.Name.IsExported() && (d.Recv == nil || exportedRecv(d.Recv)) {
						check(d.Name.Name, d.Type)
						checked++
					}
				case *ast.GenDecl:
					for _, spec := range d.Specs {
						if ts, ok := spec.(*ast.TypeSpec); ok && ts.Name.IsExported() {
							checkExportedFields(ts, check)
							checked++
						}
					}
				}
			}
		}
	}
	if checked < 30 {
		t.Fatalf("only %d exported declarations found: the check is not looking at the package", checked)
	}
}

func exportedRecv(recv *ast.FieldList) bool {
	typ := recv.List[0].Type
	if star, ok := typ.(*ast.StarExpr); ok {
		typ = star.X
	}
	if idx, ok := typ.(*ast.IndexExpr); ok {
		typ = idx.X
	}
	id, ok := typ.(*ast.Ident)
	return ok && id.IsExported()
}

func checkExportedFields(ts *ast.TypeSpec, check func(string, ast.Node)) {
	st, ok := ts.Type.(*ast.StructType)
	if !ok {
		check(ts.Name.Name, ts.Type)
		return
	}
	for _, field := range st.Fields.List {
		for _, name := range field.Names {
			if name.IsExported() {
				check(ts.Name.Name+"."+name.Name, field.Type)
			}
		}
	}
}
