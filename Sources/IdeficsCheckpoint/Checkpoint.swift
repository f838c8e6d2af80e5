import Foundation
import IdeficsFiles
import IdeficsTensors

/// A Hugging Face checkpoint folder: JSON configs and one or more memory-mapped safetensors files.
public struct Checkpoint: Sendable {
    public let directory: URL
    /// Set before a model is built from this checkpoint: its float matrices are then quantized as they load.
    public var quantization: WeightQuantization?
    /// Set before a model is built: the precision of its matrix products (at bf16, F32 and F16 matrices are rounded to
    /// BF16 as they load).
    public var products: ProductPrecision = .float32
    /// Threads for work on weights as they load (quantizing, repacking AWQ, rounding to BF16).
    public var pool = WorkerPool(threads: 1)
    /// How the stored weights are quantized (config.json's quantization_config), if they are.
    public let storedQuantization: StoredQuantization?
    private let files: [SafetensorsFile]
    /// Tensor name -> index into `files`.
    private let location: [String: Int]

    /// Opens a folder, or a model id from the local Hugging Face cache.
    public init(pathOrID: String, revision: String? = nil) throws {
        try self.init(directory: Self.resolveDirectory(pathOrID, revision: revision))
    }

    /// The folder that `pathOrID` names: an existing folder, or a model id's snapshot in the local cache at
    /// `revision` (a branch, tag or commit; only for model ids).
    public static func resolveDirectory(_ pathOrID: String, revision: String? = nil) throws -> URL {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: pathOrID, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw CheckpointError.invalidConfig(path: pathOrID, reason: "is a file; pass the checkpoint folder")
            }
            guard revision == nil else {
                throw CheckpointError.invalidConfig(path: pathOrID, reason: "is a folder; a revision applies only to a model id")
            }
            return URL(fileURLWithPath: pathOrID)
        }
        guard HubCache.looksLikeModelID(pathOrID) else { throw CheckpointError.notFound(path: pathOrID) }
        return try HubCache.resolve(pathOrID, revision: revision)
    }

    public init(directory: URL) throws {
        self.directory = directory
        let fileManager = FileManager.default
        let index = directory.appendingPathComponent("model.safetensors.index.json")
        var names: [String]
        var weightMap: [String: String]? = nil
        if fileManager.fileExists(atPath: index.path) {
            let json = try Self.readJSONObject(index)
            guard let map = json["weight_map"] as? [String: String] else {
                throw CheckpointError.invalidConfig(path: index.path, reason: "has no weight_map object")
            }
            weightMap = map
            names = Array(Set(map.values)).sorted()
        } else if fileManager.fileExists(atPath: directory.appendingPathComponent("model.safetensors").path) {
            names = ["model.safetensors"]
        } else if let pickle = ["pytorch_model.bin.index.json", "pytorch_model.bin"]
                    .first(where: { fileManager.fileExists(atPath: directory.appendingPathComponent($0).path) }) {
            throw CheckpointError.unsupportedFormat(path: directory.appendingPathComponent(pickle).path, remedy:
                "PyTorch pickle weights are not read (unpickling can run arbitrary code); convert the folder to "
                + "safetensors with its transformers class, e.g. `python -c \"from transformers import "
                + "Idefics2ForConditionalGeneration as M; M.from_pretrained('\(directory.path)')"
                + ".save_pretrained('\(directory.path)-safetensors')\"`, and copy the tokenizer and processor files")
        } else {
            throw CheckpointError.missingFile(path: directory.appendingPathComponent("model.safetensors").path,
                                              reason: "no model.safetensors or model.safetensors.index.json in the folder")
        }
        files = try names.map { try SafetensorsFile(path: directory.appendingPathComponent($0).path) }
        var location = [String: Int]()
        for (fileIndex, file) in files.enumerated() {
            for name in file.entries.keys { location[name] = fileIndex }
        }
        if let weightMap {
            for (tensor, fileName) in weightMap where location[tensor].map({ names[$0] }) != fileName {
                throw CheckpointError.missingTensor(name: tensor, checkpoint: directory.appendingPathComponent(fileName).path)
            }
        }
        self.location = location
        storedQuantization = try ConfigObject.load(directory: directory, file: "config.json").flatMap {
            try StoredQuantization(config: $0)
        }
    }

    public var tensorNames: [String] { location.keys.sorted() }

    /// Total bytes of the weight files.
    public var weightBytes: Int { files.reduce(0) { $0 + $1.file.count } }

    public func contains(_ name: String) -> Bool { location[name] != nil }

    /// The weight files' bytes a model built from them still reads (less what it quantized or rounded and released).
    public var keptWeightBytes: Int { files.reduce(0) { $0 + $1.file.keptRanges.reduce(0) { $0 + $1.count } } }

    /// The memory this process may fill (`MemoryLimit`: the machine's, or its control group's cap), and whether the
    /// weights a built model reads fit in 80% of it: populated or locked past that, they would evict one another or
    /// leave too little for the activations and the system.
    private var memoryForWeights: (bytes: Int, fits: Bool) {
        let memory = MemoryLimit.bytes()
        return (memory, memory > 0 && keptWeightBytes <= memory / 10 * 8)
    }

    /// Maps the weights a built model reads into memory now (`MappedFile.populate`), where they fit
    /// (`memoryForWeights`); returns whether it did.
    @discardableResult
    public func populateWeights() -> Bool {
        guard memoryForWeights.fits else { return false }
        for file in files { file.file.populate(pool: pool) }
        return true
    }

    /// Locks the weights a built model reads in memory (`MappedFile.lockInMemory`); refused where they do not fit
    /// (`memoryForWeights`).
    public func lockWeights() throws {
        let memory = memoryForWeights
        guard memory.fits else {
            throw CheckpointError.cannotLock(path: directory.path, reason: String(
                format: "its %.2f GB of weights exceed 80%% of the %.2f GB this process may fill",
                Double(keptWeightBytes) / 1e9, Double(memory.bytes) / 1e9))
        }
        for file in files { try file.file.lockInMemory() }
    }

    /// The weight file that holds tensor `name` (the folder when none does).
    func path(of name: String) -> String { location[name].map { files[$0].path } ?? directory.path }

    /// A tensor by its Hugging Face name, checked against the shape the config implies.
    public func tensor(_ name: String, shape: [Int]? = nil, floatOnly: Bool = true) throws -> WeightTensor {
        guard let fileIndex = location[name], let tensor = files[fileIndex].tensor(name) else {
            throw CheckpointError.missingTensor(name: name, checkpoint: directory.path)
        }
        let path = files[fileIndex].path
        if let shape, tensor.shape != shape {
            throw CheckpointError.tensorMismatch(name: name, path: path,
                                                 reason: "shape \(tensor.shape) disagrees with config.json, which implies \(shape)")
        }
        if floatOnly, !tensor.dtype.isFloatWeight {
            throw CheckpointError.tensorMismatch(name: name, path: path,
                                                 reason: "dtype \(tensor.dtype.rawValue) is not F32, F16 or BF16")
        }
        return tensor
    }

    /// A small float tensor (norm weights, biases) copied to float32.
    public func floats(_ name: String, count: Int) throws -> [Float] {
        try tensor(name, shape: [count]).floats()
    }

    /// The folder's `file` as a JSON object, or nil when the file does not exist.
    public func jsonObject(_ file: String) throws -> [String: Any]? {
        let url = directory.appendingPathComponent(file)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        return try Self.readJSONObject(url)
    }

    /// Decodes `file` (or the object at `key` inside it) into a config type.
    public func decode<T: Decodable>(_ type: T.Type, from file: String, key: String? = nil) throws -> T {
        let url = directory.appendingPathComponent(file)
        guard var object = try jsonObject(file) else {
            throw CheckpointError.missingFile(path: url.path, reason: "required by \(T.self)")
        }
        if let key {
            guard let nested = object[key] as? [String: Any] else {
                throw CheckpointError.invalidConfig(path: url.path, reason: "has no \"\(key)\" object")
            }
            object = nested
        }
        do {
            let data = try JSONSerialization.data(withJSONObject: object)
            return try JSONDecoder().decode(T.self, from: data)
        } catch let error as DecodingError {
            throw CheckpointError.invalidConfig(path: url.path, reason: Self.describe(error, key: key))
        }
    }

    static func readJSONObject(_ url: URL) throws -> [String: Any] {
        let data: Data
        do {
            data = try InputFile.data(at: url.path)
        } catch let error as InputFileError {
            throw CheckpointError.unreadable(path: url.path, reason: error.reason)
        }
        let object: Any
        do {
            object = try InputFile.json(data)
        } catch let error as JSONError {
            throw CheckpointError.invalidJSON(path: url.path, reason: error.reason)
        }
        guard let dictionary = object as? [String: Any] else {
            throw CheckpointError.invalidJSON(path: url.path, reason: "the top level is not an object")
        }
        return dictionary
    }

    private static func describe(_ error: DecodingError, key: String?) -> String {
        func path(_ context: DecodingError.Context) -> String {
            ((key.map { [$0] } ?? []) + context.codingPath.map(\.stringValue)).joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let missing, let context):
            return "field \((path(context).isEmpty ? "" : path(context) + ".") + missing.stringValue) is missing"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            // Foundation reports a number that does not fit the field's type without its path.
            let field = path(context).isEmpty ? "a field" : "field \(path(context))"
            return "\(field) has a value of the wrong type (\(context.debugDescription))"
        @unknown default:
            return "\(error)"
        }
    }
}
