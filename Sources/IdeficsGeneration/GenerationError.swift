/// Why a generation could not run or finish. `isCallerFault` tells a front end whose doing it is: the request's
/// (a client error, HTTP 4xx) or the model's (its weights or files produce something unusable, HTTP 5xx).
public enum GenerationError: Error, Equatable, CustomStringConvertible {
    /// A parameter outside its range: its name, the value given and the values allowed.
    case invalidParameter(name: String, value: String, allowed: String)
    case emptyPrompt
    /// The prompt fills the context, leaving no room for a new token.
    case promptTooLong(tokens: Int, context: Int)
    case contextExceeded(positions: Int, context: Int)
    case tokenOutsideVocabulary(id: Int, vocabularySize: Int)
    /// The prompt's image tokens and the images' feature rows do not pair up one to one.
    case imageTokenMismatch(tokens: Int, features: Int)
    /// The model's logits hold NaN or an infinity at this step (0 = the prompt's).
    case nonFiniteLogits(step: Int)
    /// The engine was shutting down and its grace period ended before this request ran.
    case shutDown

    public var isCallerFault: Bool {
        switch self {
        case .nonFiniteLogits, .shutDown: false
        default: true
        }
    }

    public var description: String {
        switch self {
        case let .invalidParameter(name, value, allowed): "\(name) must be in \(allowed), not \(value)"
        case .emptyPrompt: "the prompt is empty"
        case let .promptTooLong(tokens, context):
            "the prompt has \(tokens) tokens; the model's context holds \(context), leaving no room to generate"
        case let .contextExceeded(positions, context): "\(positions) positions exceed the model's context of \(context)"
        case let .tokenOutsideVocabulary(id, size): "token id \(id) is outside the vocabulary (0..<\(size))"
        case let .imageTokenMismatch(tokens, features):
            "the prompt has \(tokens) <image> tokens but the images give \(features) feature rows; each image "
                + "token takes one (check that config.json's image_token_id is the tokenizer's <image> id)"
        case let .nonFiniteLogits(step):
            "the model produced non-finite logits (NaN or infinity) at step \(step): its weights or config hold "
                + "values that overflow"
        case .shutDown: "the engine shut down before this request ran"
        }
    }
}
