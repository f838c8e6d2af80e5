/// Why the pipeline refused a request or a checkpoint. `isCallerFault`: the request's doing (HTTP 4xx for a server),
/// otherwise the checkpoint's (its files disagree with each other: 5xx).
public enum PipelineError: Error, Equatable, CustomStringConvertible {
    case textOnlyModel(directory: String)
    /// The prompt has a token the tokenizer knows but the model has no embedding row for.
    case tokenWithoutEmbedding(id: Int, text: String, directory: String, vocabularySize: Int)
    case noChatTemplate(directory: String)
    /// config.json's image_token_id is not the tokenizer's `<image>` id (or the tokenizer has no such token).
    case imageTokenMismatch(directory: String, configId: Int, tokenizerId: Int?)
    /// A line of an evaluation set that is not an item.
    case badEvaluationItem(path: String, line: Int, reason: String)
    case emptyEvaluationSet(path: String)
    /// `idefics quantize`: the output folder exists (nothing is ever written over), or the input is quantized already.
    case outputExists(path: String)
    case alreadyQuantized(directory: String)
    /// An Idefics v1 tokenizer without a token its prompts need.
    case missingToken(directory: String, token: String)

    public var isCallerFault: Bool {
        if case .imageTokenMismatch = self { return false }
        if case .missingToken = self { return false }
        return true
    }

    public var description: String {
        switch self {
        case let .textOnlyModel(directory): "\(directory) is a text-only model: it takes no images"
        case let .tokenWithoutEmbedding(id, text, directory, size):
            "the prompt has token \(id) (\"\(text)\"), but \(directory) has embeddings for ids 0..<\(size) only"
        case let .noChatTemplate(directory):
            "\(directory) has no chat template (chat_template.jinja, chat_template.json, processor_config.json or "
                + "tokenizer_config.json)"
        case let .imageTokenMismatch(directory, configId, tokenizerId?):
            "\(directory)/config.json: image_token_id is \(configId) but tokenizer.json gives <image> the id "
                + "\(tokenizerId): images would never reach the model"
        case let .imageTokenMismatch(directory, configId, nil):
            "\(directory)/tokenizer.json has no <image> token (config.json's image_token_id is \(configId)): images "
                + "would never reach the model"
        case let .badEvaluationItem(path, line, reason): "\(path):\(line): \(reason)"
        case let .emptyEvaluationSet(path): "\(path) holds no evaluation items: nothing to evaluate"
        case let .outputExists(path): "\(path) exists: the converted checkpoint goes to a new folder (nothing is written over)"
        case let .missingToken(directory, token):
            "\(directory)/tokenizer.json has no \(token) token: Idefics v1 prompts cannot be built"
        case let .alreadyQuantized(directory):
            "\(directory) is quantized already (config.json has a quantization_config): quantize the unquantized checkpoint"
        }
    }
}
