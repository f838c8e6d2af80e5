/// Everything that can be wrong with a checkpoint folder; each case names the file and the problem.
public enum CheckpointError: Error, Equatable, CustomStringConvertible {
    case notFound(path: String)
    case modelNotInCache(id: String, searched: [String])
    case missingFile(path: String, reason: String)
    case unreadable(path: String, reason: String)
    case invalidJSON(path: String, reason: String)
    case invalidSafetensors(path: String, reason: String)
    case missingTensor(name: String, checkpoint: String)
    case tensorMismatch(name: String, path: String, reason: String)
    case invalidConfig(path: String, reason: String)
    case unsupportedFormat(path: String, remedy: String)
    case invalidCache(path: String, reason: String)
    /// `--mlock`: the weights could not be locked in memory.
    case cannotLock(path: String, reason: String)

    public var description: String {
        switch self {
        case .notFound(let path):
            "model not found: \(path) is neither a checkpoint folder nor a model id in the Hugging Face cache"
        case .modelNotInCache(let id, let searched):
            "model \(id) is not in the local Hugging Face cache (searched \(searched.joined(separator: ", "))); "
                + "download it first, e.g. `huggingface-cli download \(id)`, or pass a checkpoint folder"
        case .missingFile(let path, let reason): "\(path): missing (\(reason))"
        case .unreadable(let path, let reason): "\(path): cannot be read: \(reason)"
        case .invalidJSON(let path, let reason): "\(path): invalid JSON: \(reason)"
        case .invalidSafetensors(let path, let reason): "\(path): invalid safetensors file: \(reason)"
        case .missingTensor(let name, let checkpoint): "\(checkpoint): tensor \(name) is missing"
        case .tensorMismatch(let name, let path, let reason): "\(path): tensor \(name): \(reason)"
        case .invalidConfig(let path, let reason): "\(path): \(reason)"
        case .unsupportedFormat(let path, let remedy): "\(path): \(remedy)"
        case .invalidCache(let path, let reason): "Hugging Face cache: \(path): \(reason)"
        case .cannotLock(let path, let reason): "\(path): cannot lock the weights in memory: \(reason)"
        }
    }
}
