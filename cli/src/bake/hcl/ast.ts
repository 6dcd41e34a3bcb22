/** A place in an HCL file: 1-based line and column, 0-based offset. */
export interface Pos {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly offset: number;
}

/** A value of an evaluated HCL expression (cty's string, number, bool, null, tuple/list, object/map). */
export type Value = string | number | boolean | null | readonly Value[] | { readonly [key: string]: Value };

/** An HCL native-syntax expression. */
export type Expr =
  | { readonly kind: 'literal'; readonly value: Value; readonly pos: Pos }
  | { readonly kind: 'template'; readonly parts: readonly (string | Expr)[]; readonly pos: Pos }
  | { readonly kind: 'templateIf'; readonly cond: Expr; readonly then: Expr; readonly else: Expr | undefined; readonly pos: Pos }
  | { readonly kind: 'templateFor'; readonly keyVar: string | undefined; readonly valueVar: string; readonly collection: Expr; readonly body: Expr; readonly pos: Pos }
  | { readonly kind: 'variable'; readonly name: string; readonly pos: Pos }
  | { readonly kind: 'tuple'; readonly items: readonly Expr[]; readonly pos: Pos }
  | { readonly kind: 'object'; readonly items: readonly { readonly key: Expr; readonly value: Expr }[]; readonly pos: Pos }
  | { readonly kind: 'call'; readonly name: string; readonly args: readonly Expr[]; readonly expand: boolean; readonly pos: Pos }
  | { readonly kind: 'index'; readonly target: Expr; readonly key: Expr; readonly pos: Pos }
  | { readonly kind: 'attr'; readonly target: Expr; readonly name: string; readonly pos: Pos }
  | { readonly kind: 'splat'; readonly target: Expr; readonly each: readonly ({ readonly attr: string } | { readonly index: Expr })[]; readonly pos: Pos }
  | { readonly kind: 'unary'; readonly op: '!' | '-'; readonly operand: Expr; readonly pos: Pos }
  | { readonly kind: 'binary'; readonly op: string; readonly left: Expr; readonly right: Expr; readonly pos: Pos }
  | { readonly kind: 'conditional'; readonly cond: Expr; readonly then: Expr; readonly else: Expr; readonly pos: Pos }
  | {
      readonly kind: 'for';
      readonly keyVar: string | undefined;
      readonly valueVar: string;
      readonly collection: Expr;
      readonly keyExpr: Expr | undefined;
      readonly valueExpr: Expr;
      readonly cond: Expr | undefined;
      readonly group: boolean;
      readonly pos: Pos;
    };

/** `name = expr` in a body. */
export interface Attribute {
  readonly name: string;
  readonly expr: Expr;
  readonly pos: Pos;
}

/** `type "label" … { body }`. */
export interface Block {
  readonly type: string;
  readonly labels: readonly string[];
  readonly body: Body;
  readonly pos: Pos;
}

/** A body: attributes (unique names) and blocks, in file order. */
export interface Body {
  readonly attributes: readonly Attribute[];
  readonly blocks: readonly Block[];
}

/** One parsed HCL file. */
export interface HclFile {
  readonly name: string;
  readonly body: Body;
}
