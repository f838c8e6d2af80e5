/// jinja2's parser for the statements and expressions chat templates use. Unsupported tags are syntax errors that
/// name the tag.
struct Parser {
    private let tokens: [Token]
    private var index = 0
    private var depth = 0
    private var loopDepth = 0
    /// Nesting bound, so that hostile input cannot overflow the stack.
    private static let maxDepth = 200

    static func parse(_ source: String) throws -> [Node] {
        var parser = Parser(tokens: try Lexer.tokenize(source))
        let (nodes, _) = try parser.parseBody(until: [])
        return nodes
    }

    private init(tokens: [Token]) { self.tokens = tokens }

    // MARK: Token helpers

    private var current: Token { tokens[index] }
    private var next: Token { tokens[min(index + 1, tokens.count - 1)] }

    private mutating func advance() -> Token {
        let token = tokens[index]
        if index < tokens.count - 1 { index += 1 }
        return token
    }

    private func fail(_ message: String, at token: Token? = nil) -> TemplateError {
        let token = token ?? current
        return .syntax(message: message, line: token.line, column: token.column)
    }

    private static func describe(_ kind: Token.Kind) -> String {
        switch kind {
        case let .text(text): return "template data \(PythonString.repr(text))"
        case .variableBegin: return "begin of print statement"
        case .variableEnd: return "end of print statement"
        case .blockBegin: return "begin of statement block"
        case .blockEnd: return "end of statement block"
        case let .name(name): return "'\(name)'"
        case let .string(text): return "string \(PythonString.repr(text))"
        case let .integer(value): return "integer \(value)"
        case let .float(value): return "float \(value)"
        case let .op(op): return "'\(op)'"
        case .end: return "end of template"
        }
    }

    private func isOp(_ op: String) -> Bool { current.kind == .op(op) }
    private func isName(_ name: String) -> Bool { current.kind == .name(name) }

    private mutating func skipOp(_ op: String) -> Bool {
        guard isOp(op) else { return false }
        _ = advance()
        return true
    }

    private mutating func skipName(_ name: String) -> Bool {
        guard isName(name) else { return false }
        _ = advance()
        return true
    }

    private mutating func expectOp(_ op: String) throws {
        guard skipOp(op) else { throw fail("expected '\(op)', got \(Self.describe(current.kind))") }
    }

    private mutating func expectName() throws -> String {
        guard case let .name(name) = current.kind else {
            throw fail("expected a name, got \(Self.describe(current.kind))")
        }
        _ = advance()
        return name
    }

    private mutating func expectBlockEnd() throws {
        guard current.kind == .blockEnd else {
            throw fail("expected end of statement block, got \(Self.describe(current.kind))")
        }
        _ = advance()
    }

    private mutating func nested<T>(_ body: (inout Parser) throws -> T) throws -> T {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maxDepth else { throw fail("template nesting deeper than \(Self.maxDepth) levels") }
        return try body(&self)
    }

    // MARK: Statements

    /// Nodes up to a block tag named in `endTags` (returned, consumed up to its name) or the end of the template.
    private mutating func parseBody(until endTags: Set<String>) throws -> ([Node], String?) {
        var nodes: [Node] = []
        while true {
            let token = current
            switch token.kind {
            case let .text(text):
                _ = advance()
                nodes.append(.text(text))
            case .variableBegin:
                _ = advance()
                let expr = try parseTuple()
                guard current.kind == .variableEnd else {
                    throw fail("expected end of print statement, got \(Self.describe(current.kind))")
                }
                _ = advance()
                nodes.append(.output(expr))
            case .blockBegin:
                _ = advance()
                if case let .name(name) = current.kind, endTags.contains(name) {
                    _ = advance()
                    return (nodes, name)
                }
                nodes.append(try nested { try $0.parseStatement() })
            case .end:
                guard endTags.isEmpty else {
                    let expected = endTags.sorted().map { "'\($0)'" }.joined(separator: " or ")
                    throw fail("Unexpected end of template. Jinja was looking for the following tags: \(expected).")
                }
                return (nodes, nil)
            default:
                throw fail("unexpected \(Self.describe(token.kind))")
            }
        }
    }

    private mutating func parseStatement() throws -> Node {
        let tagToken = current
        guard case let .name(tag) = tagToken.kind else {
            throw fail("tag name expected, got \(Self.describe(current.kind))")
        }
        _ = advance()
        switch tag {
        case "if": return try parseIf()
        case "for": return try parseFor()
        case "set": return try parseSet()
        case "macro": return try parseMacro()
        case "generation":
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endgeneration"])
            try expectBlockEnd()
            return .block(body)
        case "break", "continue":
            guard loopDepth > 0 else { throw fail("'\(tag)' outside of a loop", at: tagToken) }
            try expectBlockEnd()
            return tag == "break" ? .breakLoop : .continueLoop
        default:
            throw fail("Encountered unknown tag '\(tag)'.", at: tagToken)
        }
    }

    private mutating func parseIf() throws -> Node {
        var branches: [(condition: Expr, body: [Node])] = []
        var otherwise: [Node] = []
        var condition = try parseTuple(allowConditional: false)
        while true {
            try expectBlockEnd()
            let (body, end) = try parseBody(until: ["elif", "else", "endif"])
            branches.append((condition, body))
            if end == "elif" {
                condition = try parseTuple(allowConditional: false)
                continue
            }
            if end == "else" {
                try expectBlockEnd()
                (otherwise, _) = try parseBody(until: ["endif"])
            }
            try expectBlockEnd()
            return .conditional(branches: branches, otherwise: otherwise)
        }
    }

    private mutating func parseTargets() throws -> [String] {
        let parenthesized = skipOp("(")
        var names = [try expectName()]
        while skipOp(",") {
            if case .name = current.kind { names.append(try expectName()) } else { break }
        }
        if parenthesized { try expectOp(")") }
        return names
    }

    private mutating func parseFor() throws -> Node {
        let targets = try parseTargets()
        guard skipName("in") else { throw fail("expected 'in', got \(Self.describe(current.kind))") }
        let iterable = try parseTuple(allowConditional: false)
        let filter = skipName("if") ? try parseExpression() : nil
        if isName("recursive") { throw fail("recursive loops are not supported") }
        try expectBlockEnd()
        loopDepth += 1
        let (body, end) = try parseBody(until: ["endfor", "else"])
        loopDepth -= 1
        var otherwise: [Node] = []
        if end == "else" {
            try expectBlockEnd()
            (otherwise, _) = try parseBody(until: ["endfor"])
        }
        try expectBlockEnd()
        return .loop(Node.Loop(targets: targets, iterable: iterable, filter: filter, body: body, otherwise: otherwise))
    }

    private mutating func parseSet() throws -> Node {
        let first = try expectName()
        if skipOp(".") {
            let attribute = try expectName()
            try expectOp("=")
            let value = try parseTuple()
            try expectBlockEnd()
            return .assign(.attribute(object: first, name: attribute), value)
        }
        var names = [first]
        while skipOp(",") { names.append(try expectName()) }
        if skipOp("=") {
            let value = try parseTuple()
            try expectBlockEnd()
            return .assign(.names(names), value)
        }
        guard names.count == 1 else { throw fail("expected '=', got \(Self.describe(current.kind))") }
        if isOp("|") { throw fail("filters on block assignments are not supported") }
        try expectBlockEnd()
        let (body, _) = try parseBody(until: ["endset"])
        try expectBlockEnd()
        return .assignBlock(name: first, body: body)
    }

    private mutating func parseMacro() throws -> Node {
        let name = try expectName()
        try expectOp("(")
        var parameters: [(name: String, defaultValue: Expr?)] = []
        while !isOp(")") {
            if !parameters.isEmpty { try expectOp(",") }
            if isOp(")") { break }
            let parameter = try expectName()
            parameters.append((parameter, skipOp("=") ? try parseExpression() : nil))
        }
        try expectOp(")")
        try expectBlockEnd()
        let savedLoopDepth = loopDepth
        loopDepth = 0
        let (body, _) = try parseBody(until: ["endmacro"])
        loopDepth = savedLoopDepth
        try expectBlockEnd()
        return .macro(Macro(name: name, parameters: parameters, body: body))
    }

    // MARK: Expressions (jinja2's precedence, loosest first)

    /// Comma-separated expressions; a comma makes a tuple.
    private mutating func parseTuple(allowConditional: Bool = true, parenthesized: Bool = false) throws -> Expr {
        let line = current.line
        var items: [Expr] = []
        var isTuple = false
        while true {
            if !items.isEmpty { try expectOp(",") }
            if [.variableEnd, .blockEnd, .op(")")].contains(current.kind) { break }
            items.append(allowConditional ? try parseExpression() : try parseOr())
            guard isOp(",") else { break }
            isTuple = true
        }
        if !isTuple, items.count == 1 { return items[0] }
        if items.isEmpty, !parenthesized { throw fail("expected an expression, got \(Self.describe(current.kind))") }
        return Expr(kind: .tuple(items), line: line)
    }

    private mutating func parseExpression() throws -> Expr {
        try nested { parser in
            var expr = try parser.parseOr()
            while parser.isName("if") {
                let line = parser.advance().line
                let condition = try parser.parseOr()
                let otherwise = parser.skipName("else") ? try parser.parseExpression() : nil
                expr = Expr(kind: .conditional(then: expr, condition: condition, otherwise: otherwise), line: line)
            }
            return expr
        }
    }

    private mutating func parseOr() throws -> Expr {
        var left = try parseAnd()
        while isName("or") {
            let line = advance().line
            left = Expr(kind: .or(left, try parseAnd()), line: line)
        }
        return left
    }

    private mutating func parseAnd() throws -> Expr {
        var left = try parseNot()
        while isName("and") {
            let line = advance().line
            left = Expr(kind: .and(left, try parseNot()), line: line)
        }
        return left
    }

    private mutating func parseNot() throws -> Expr {
        if isName("not") {
            let line = advance().line
            return Expr(kind: .not(try nested { try $0.parseNot() }), line: line)
        }
        return try parseCompare()
    }

    private static let comparisons: [String: CompareOperator] = [
        "==": .equal, "!=": .notEqual, "<": .less, "<=": .lessEqual, ">": .greater, ">=": .greaterEqual,
    ]

    private mutating func parseCompare() throws -> Expr {
        let line = current.line
        let first = try parseMath1()
        var operations: [(op: CompareOperator, Expr)] = []
        while true {
            if case let .op(op) = current.kind, let comparison = Self.comparisons[op] {
                _ = advance()
                operations.append((comparison, try parseMath1()))
            } else if skipName("in") {
                operations.append((.isIn, try parseMath1()))
            } else if isName("not"), next.kind == .name("in") {
                _ = advance()
                _ = advance()
                operations.append((.notIn, try parseMath1()))
            } else {
                break
            }
        }
        return operations.isEmpty ? first : Expr(kind: .compare(first, operations), line: line)
    }

    private mutating func parseBinary(_ ops: [String: BinaryOperator], operand: (inout Parser) throws -> Expr) throws -> Expr {
        var left = try operand(&self)
        while case let .op(op) = current.kind, let binary = ops[op] {
            let line = advance().line
            left = Expr(kind: .binary(binary, left, try operand(&self)), line: line)
        }
        return left
    }

    private mutating func parseMath1() throws -> Expr {
        try parseBinary(["+": .add, "-": .subtract]) { try $0.parseConcat() }
    }

    private mutating func parseConcat() throws -> Expr {
        try parseBinary(["~": .concat]) { try $0.parseMath2() }
    }

    private mutating func parseMath2() throws -> Expr {
        try parseBinary(["*": .multiply, "/": .divide, "//": .floorDivide, "%": .modulo]) { try $0.parsePower() }
    }

    private mutating func parsePower() throws -> Expr {
        try parseBinary(["**": .power]) { try $0.parseUnary() }
    }

    private mutating func parseUnary(withFilter: Bool = true) throws -> Expr {
        try nested { parser in
            let line = parser.current.line
            var node: Expr
            if parser.skipOp("-") {
                node = Expr(kind: .negate(try parser.parseUnary(withFilter: false)), line: line)
            } else if parser.skipOp("+") {
                node = Expr(kind: .plus(try parser.parseUnary(withFilter: false)), line: line)
            } else {
                node = try parser.parsePrimary()
            }
            node = try parser.parsePostfix(node)
            return withFilter ? try parser.parseFilterExpression(node) : node
        }
    }

    private mutating func parsePrimary() throws -> Expr {
        let token = current
        let line = token.line
        switch token.kind {
        case let .name(name):
            _ = advance()
            switch name {
            case "true", "True": return Expr(kind: .literal(.bool(true)), line: line)
            case "false", "False": return Expr(kind: .literal(.bool(false)), line: line)
            case "none", "None": return Expr(kind: .literal(.none), line: line)
            default: return Expr(kind: .name(name), line: line)
            }
        case var .string(text):
            _ = advance()
            while case let .string(more) = current.kind {
                text += more
                _ = advance()
            }
            return Expr(kind: .literal(.string(text)), line: line)
        case let .integer(value):
            _ = advance()
            return Expr(kind: .literal(.int(value)), line: line)
        case let .float(value):
            _ = advance()
            return Expr(kind: .literal(.double(value)), line: line)
        case .op("("):
            _ = advance()
            let expr = try parseTuple(parenthesized: true)
            try expectOp(")")
            return expr
        case .op("["):
            _ = advance()
            var items: [Expr] = []
            while !isOp("]") {
                if !items.isEmpty { try expectOp(",") }
                if isOp("]") { break }
                items.append(try parseExpression())
            }
            try expectOp("]")
            return Expr(kind: .list(items), line: line)
        case .op("{"):
            _ = advance()
            var entries: [(key: Expr, value: Expr)] = []
            while !isOp("}") {
                if !entries.isEmpty { try expectOp(",") }
                if isOp("}") { break }
                let key = try parseExpression()
                try expectOp(":")
                entries.append((key, try parseExpression()))
            }
            try expectOp("}")
            return Expr(kind: .dict(entries), line: line)
        default:
            throw fail("unexpected \(Self.describe(token.kind))")
        }
    }

    private mutating func parsePostfix(_ start: Expr) throws -> Expr {
        var node = start
        while true {
            if isOp(".") || isOp("[") {
                node = try parseSubscript(node)
            } else if isOp("(") {
                node = try parseCall(node)
            } else {
                return node
            }
        }
    }

    private mutating func parseFilterExpression(_ start: Expr) throws -> Expr {
        var node = start
        while true {
            if isOp("|") {
                node = try parseFilter(node)
            } else if isName("is") {
                node = try parseTest(node)
            } else if isOp("(") {
                node = try parseCall(node)
            } else {
                return node
            }
        }
    }

    private mutating func parseSubscript(_ object: Expr) throws -> Expr {
        let line = advance().line
        if tokens[index - 1].kind == .op(".") {
            switch current.kind {
            case let .name(name):
                _ = advance()
                return Expr(kind: .attribute(object, name), line: line)
            case let .integer(value):
                _ = advance()
                return Expr(kind: .item(object, Expr(kind: .literal(.int(value)), line: line)), line: line)
            default:
                throw fail("expected name or number, got \(Self.describe(current.kind))")
            }
        }
        var parts: [Expr?] = [nil]
        var isSlice = false
        while !isOp("]") {
            if skipOp(":") {
                isSlice = true
                guard parts.count < 3 else { throw fail("unexpected ':'") }
                parts.append(nil)
            } else if parts[parts.count - 1] == nil {
                parts[parts.count - 1] = try parseExpression()
            } else {
                throw fail("expected ']', got \(Self.describe(current.kind))")
            }
        }
        try expectOp("]")
        if isSlice {
            while parts.count < 3 { parts.append(nil) }
            return Expr(kind: .slice(object, start: parts[0], stop: parts[1], step: parts[2]), line: line)
        }
        guard let key = parts[0] else { throw fail("expected an expression inside '[]'") }
        return Expr(kind: .item(object, key), line: line)
    }

    private mutating func parseArguments() throws -> [Expr.Argument] {
        try expectOp("(")
        var arguments: [Expr.Argument] = []
        while !isOp(")") {
            if !arguments.isEmpty { try expectOp(",") }
            if isOp(")") { break }
            if isOp("*") || isOp("**") { throw fail("*args and **kwargs in calls are not supported") }
            if case let .name(name) = current.kind, next.kind == .op("=") {
                _ = advance()
                _ = advance()
                arguments.append(Expr.Argument(name: name, value: try parseExpression()))
            } else {
                guard arguments.allSatisfy({ $0.name == nil }) else {
                    throw fail("positional argument follows keyword argument")
                }
                arguments.append(Expr.Argument(name: nil, value: try parseExpression()))
            }
        }
        try expectOp(")")
        return arguments
    }

    private mutating func parseCall(_ callee: Expr) throws -> Expr {
        let line = current.line
        return Expr(kind: .call(callee, try parseArguments()), line: line)
    }

    private mutating func dottedName() throws -> String {
        var name = try expectName()
        while skipOp(".") { name += "." + (try expectName()) }
        return name
    }

    private mutating func parseFilter(_ value: Expr) throws -> Expr {
        let line = advance().line
        let name = try dottedName()
        let arguments = isOp("(") ? try parseArguments() : []
        return Expr(kind: .filter(value, name: name, arguments), line: line)
    }

    private mutating func parseTest(_ value: Expr) throws -> Expr {
        let line = advance().line
        let negated = skipName("not")
        let name = try dottedName()
        var arguments: [Expr.Argument] = []
        if isOp("(") {
            arguments = try parseArguments()
        } else if startsPrimary(), !isName("else"), !isName("or"), !isName("and") {
            if isName("is") { throw fail("You cannot chain multiple tests with is") }
            let argument = try parsePostfix(try parsePrimary())
            arguments = [Expr.Argument(name: nil, value: argument)]
        }
        return Expr(kind: .test(value, name: name, arguments, negated: negated), line: line)
    }

    private func startsPrimary() -> Bool {
        switch current.kind {
        case .name, .string, .integer, .float, .op("("), .op("["), .op("{"): return true
        default: return false
        }
    }
}
