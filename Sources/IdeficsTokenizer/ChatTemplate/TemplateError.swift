import Foundation

/// Everything that can go wrong with a chat template. Lines and columns are 1-based and count Unicode scalars.
public enum TemplateError: Error, Equatable, CustomStringConvertible {
    /// The template does not parse, or uses syntax this interpreter does not implement.
    case syntax(message: String, line: Int, column: Int)
    /// The template called `raise_exception(message)`; transformers raises a TemplateError with this message.
    case raised(message: String)
    /// Rendering failed: undefined value used, unknown filter, type error, sandbox violation, limit reached.
    case runtime(message: String, line: Int)
    /// A checkpoint's template file could not be read or has an unexpected shape.
    case load(file: String, reason: String)

    public var description: String {
        switch self {
        case let .syntax(message, line, column): return "template syntax error at line \(line), column \(column): \(message)"
        case let .raised(message): return message
        case let .runtime(message, line): return "template error at line \(line): \(message)"
        case let .load(file, reason): return "\(file): \(reason)"
        }
    }
}

extension TemplateError: LocalizedError {
    public var errorDescription: String? { description }
}

/// A runtime failure before the line of the expression that caused it is known; the interpreter adds the line.
struct EvaluationError: Error {
    let message: String
}
