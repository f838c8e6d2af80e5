import Foundation
import IdeficsCheckpoint
import IdeficsFiles
import IdeficsTensors

/// `idefics quantize`: a checkpoint folder whose matrices are stored in a block format, so that loading it maps
/// them as they are (no quantizing, no float copy). The matrices are exactly those a load with `--quantize` would
/// quantize, with the same bytes; each is a U8 tensor [rows, row bytes] under its own name (a tied head under
/// lm_head.weight), every other tensor is copied as stored, config.json gains
/// `quantization_config: {quant_method: swift-idefics, format: q8_0|q4_0, block_size: 32, row_group_size: 16,
/// quantize_vision}`, and the folder's other files are copied. Or (`writeBF16`) a plain BF16 checkpoint.
public enum CheckpointQuantizer {
    public struct Summary: Sendable {
        public let tensors: Int
        /// Tensors quantized, or rounded to BF16.
        public let convertedTensors: Int
        public let sourceBytes: Int
        public let bytes: Int
    }

    /// Files of a checkpoint folder that hold weights (replaced by the one model.safetensors written).
    static func isWeightFile(_ name: String) -> Bool {
        name.hasSuffix(".safetensors") || name.hasSuffix(".bin") || name.hasSuffix(".safetensors.index.json")
            || name.hasSuffix(".bin.index.json")
    }

    /// Loads `pathOrID` quantizing as it goes (on `threads`), then writes the folder `output`, which must not exist:
    /// it is made beside its final path and renamed into place at the end, so that a failure leaves nothing.
    /// `progress(bytesWritten, totalBytes)` follows the writing of the weights.
    public static func write(from pathOrID: String, revision: String? = nil, to output: String, format: QuantizedFormat,
                             includeVision: Bool = false, threads: Int? = nil,
                             progress: (Int, Int) -> Void = { _, _ in }) throws -> Summary {
        let directory = try source(pathOrID, revision: revision, output: output)
        let log = QuantizedMatrixLog()
        let pipeline = try Pipeline(pathOrID: directory.path, threads: threads,
                                    quantization: WeightQuantization(format: format, includeVision: includeVision, log: log))
        let checkpoint = pipeline.checkpoint, quantized = log.byName

        var tensors = [SafetensorsWriter.Streamed]()
        for name in Set(checkpoint.tensorNames).union(quantized.keys).sorted() {
            let tensor = try quantized[name] ?? checkpoint.tensor(name, floatOnly: false)
            let shape = tensor.quantization == nil ? tensor.shape : [tensor.shape[0], tensor.byteCount / tensor.shape[0]]
            tensors.append(.init(name: name, dtype: tensor.dtype, shape: shape,
                                 bytes: UnsafeRawBufferPointer(start: tensor.data, count: tensor.byteCount)))
        }
        try writeFolder(tensors, keeping: (checkpoint, quantized), from: directory, to: output, progress: progress) { config in
            config["quantization_config"] = ["quant_method": StoredQuantization.method, "block_size": 32,
                                             "row_group_size": QuantizedFormat.rowGroup,
                                             "format": StoredQuantization.formatNames[format]!,
                                             "quantize_vision": includeVision] as [String: Any]
        }
        return Summary(tensors: tensors.count, convertedTensors: quantized.count, sourceBytes: checkpoint.weightBytes,
                       bytes: tensors.reduce(0) { $0 + $1.byteCount })
    }

    /// The folder `output` (as `write` makes it) with every F32 and F16 tensor of `pathOrID` rounded to BF16, to
    /// nearest even, as torch's `model.to(torch.bfloat16)` and `save_pretrained` would write their finite values (BF16
    /// and integer tensors copied) and config.json's `dtype` (and `torch_dtype`, where it has one) bfloat16: a plain
    /// checkpoint that any loader reads, half the size of F32. One tensor is rounded at a time, on `threads`, as it
    /// is written.
    public static func writeBF16(from pathOrID: String, revision: String? = nil, to output: String, threads: Int? = nil,
                                 progress: (Int, Int) -> Void = { _, _ in }) throws -> Summary {
        let directory = try source(pathOrID, revision: revision, output: output)
        let checkpoint = try Checkpoint(directory: directory), pool = WorkerPool(threads: threads)
        var converted = 0
        let tensors = try checkpoint.tensorNames.map { name -> SafetensorsWriter.Streamed in
            let tensor = try checkpoint.tensor(name, floatOnly: false)
            guard tensor.dtype == .f32 || tensor.dtype == .f16 else {
                return .init(name: name, dtype: tensor.dtype, shape: tensor.shape,
                             bytes: UnsafeRawBufferPointer(start: tensor.data, count: tensor.byteCount))
            }
            converted += 1
            return .init(name: name, dtype: .bf16, shape: tensor.shape) { tensor.roundedToBF16(pool: pool) }
        }
        try writeFolder(tensors, keeping: checkpoint, from: directory, to: output, progress: progress) { config in
            setBF16(&config)
            for (key, value) in config { // the sub-models' configs (text_config, vision_config, ...) that name one
                guard var sub = value as? [String: Any], sub["dtype"] != nil || sub["torch_dtype"] != nil else { continue }
                setBF16(&sub)
                config[key] = sub
            }
        }
        return Summary(tensors: tensors.count, convertedTensors: converted, sourceBytes: checkpoint.weightBytes,
                       bytes: tensors.reduce(0) { $0 + $1.byteCount })
    }

    /// dtype (and torch_dtype, transformers 4's name, where it is given) bfloat16.
    private static func setBF16(_ config: inout [String: Any]) {
        config["dtype"] = "bfloat16"
        if config["torch_dtype"] != nil { config["torch_dtype"] = "bfloat16" }
    }

    /// The folder of `pathOrID`, once `output` is known not to exist (in a folder that does) and the checkpoint
    /// not to be quantized already.
    private static func source(_ pathOrID: String, revision: String?, output: String) throws -> URL {
        var info = stat()
        guard lstat(output, &info) != 0 else { throw PipelineError.outputExists(path: output) }
        try OutputFile.check(output) // its folder exists
        let directory = try Checkpoint.resolveDirectory(pathOrID, revision: revision)
        guard try StoredQuantization(config: ConfigObject.required(directory: directory, by: "idefics quantize")) == nil else {
            throw PipelineError.alreadyQuantized(directory: directory.path)
        }
        return directory
    }

    /// Writes `tensors` as model.safetensors and copies every other file of `directory` (links followed; config.json
    /// changed by `editConfig`) into a staging folder beside `output`, renamed to it at the end. `owners` (the
    /// checkpoint whose mapped files, the matrices whose memory, the tensors' bytes are) live until the end.
    private static func writeFolder(_ tensors: [SafetensorsWriter.Streamed], keeping owners: Any, from directory: URL,
                                    to output: String, progress: (Int, Int) -> Void,
                                    editConfig: (inout [String: Any]) -> Void) throws {
        defer { withExtendedLifetime(owners) {} }
        let target = URL(fileURLWithPath: output)
        let staging = target.deletingLastPathComponent()
            .appendingPathComponent(".\(target.lastPathComponent).partial-\(getpid())")
        do {
            try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: false)
            for name in try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() where !isWeightFile(name) {
                let source = directory.appendingPathComponent(name).path
                var info = stat()
                guard stat(source, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { continue } // folders are not model files
                var data = try InputFile.data(at: source)
                if name == "config.json" {
                    var config = try InputFile.json(data) as! [String: Any]
                    editConfig(&config)
                    data = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys,
                                                                                         .withoutEscapingSlashes])
                }
                try OutputFile.write(data, to: staging.appendingPathComponent(name).path)
            }
            try SafetensorsWriter.write(tensors, metadata: ["format": "pt"],
                                        to: staging.appendingPathComponent("model.safetensors").path, progress: progress)
            guard rename(staging.path, output) == 0 else {
                throw OutputFileError(path: output, reason: "cannot rename \(staging.path) to it: "
                                      + String(cString: strerror(errno)), isCallerFault: false)
            }
        } catch {
            try? FileManager.default.removeItem(at: staging)
            throw error
        }
    }
}
