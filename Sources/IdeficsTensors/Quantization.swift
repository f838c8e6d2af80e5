import CKernels
import Foundation

/// Block formats of quantized weights: blocks of 32 weights sharing an f16 scale d. llama.cpp's Q8_0 stores each
/// weight as an int8 q, w = d * q (8.5 bits per weight), and Q4_0 as 4 bits, w = d * (q - 8) (4.5 bits per weight);
/// these two are what a load or `idefics quantize` makes. Q4_Z holds AWQ checkpoints' weights as published, with
/// the 4-bit zero point z of their group in each block: w = d * (q - z) (5 bits per weight). Matrices lay their
/// rows out in groups of 16 (`rowGroup`; CKernels.h has the byte layout), a matrix taking rows x rowBytes bytes.
public enum QuantizedFormat: String, Sendable, CaseIterable {
    case q8 = "q8"
    case q4 = "q4"
    case q4z = "q4z"

    /// The formats weights are quantized to from float (AWQ's comes quantized).
    public static let targets: [QuantizedFormat] = [.q8, .q4]

    /// Rows laid out together in memory and on disk (CKernels.h: 16, for one vector of 16 rows' sums).
    public static let rowGroup = Int(CK_ROW_GROUP)

    var kernelType: ck_dtype {
        switch self {
        case .q8: CK_Q8_0
        case .q4: CK_Q4_0
        case .q4z: CK_Q4_Z
        }
    }

    /// Bytes one row of `columns` weights takes.
    public func rowBytes(columns: Int) -> Int { ck_row_bytes(kernelType, columns) }
}

/// Which matrices a load quantizes: the language model's and the connector's (connector.; Idefics v1's
/// perceiver_resampler.). The vision tower (vision_model.) stays in its stored type unless `includeVision`: it runs
/// once per image, so its weights cost memory but no decoding bandwidth, and it is the most sensitive to rounding.
/// The connector is quantized with the language model since Idefics2's, a Perceiver at the text width, is 1.5 GB
/// at BF16 (a third of the q4 model). `log`, when set, is handed every matrix quantized.
public struct WeightQuantization: Sendable {
    public var format: QuantizedFormat
    public var includeVision: Bool
    public var log: QuantizedMatrixLog?

    public init(format: QuantizedFormat, includeVision: Bool = false, log: QuantizedMatrixLog? = nil) {
        precondition(QuantizedFormat.targets.contains(format), "\(format) is not a format weights are quantized to")
        self.format = format
        self.includeVision = includeVision
        self.log = log
    }

    public func applies(to name: String) -> Bool {
        includeVision || !name.contains("vision_model.")
    }
}

/// The matrices a load quantized, by the tensor name they are stored under (what `idefics quantize` writes).
public final class QuantizedMatrixLog: @unchecked Sendable {
    private let lock = NSLock()
    private var matrices: [String: WeightTensor] = [:]

    public init() {}

    public func add(_ matrix: WeightTensor, as name: String) {
        lock.withLock { matrices[name] = matrix }
    }

    public var byName: [String: WeightTensor] { lock.withLock { matrices } }
}

/// Memory behind weight tensors that can give pages back once a tensor is no longer read (a mapped file).
public protocol ReleasableWeightStorage: AnyObject {
    func release(_ bytes: UnsafeRawBufferPointer)
}

/// Heap memory holding weights a load made (quantized, repacked or rounded), from a cache line.
final class WeightStorage: @unchecked Sendable {
    let bytes: UnsafeMutableRawPointer
    init(byteCount: Int) { bytes = .allocate(byteCount: max(byteCount, 1), alignment: 64) }
    deinit { bytes.deallocate() }
}

extension WeightTensor {
    /// This float matrix quantized row by row on `pool`'s threads, in memory the result owns; the pages of the
    /// source are given back to the system afterwards when it lives in a mapped file (its data is not kept).
    public func quantized(_ format: QuantizedFormat, pool: WorkerPool) -> WeightTensor {
        precondition(shape.count == 2 && dtype.isFloatWeight && quantization == nil && format != .q4z,
                     "\(name): not a float matrix, or \(format) is not a target format")
        let (rows, columns) = (shape[0], shape[1])
        let rowBytes = format.rowBytes(columns: columns)
        let storage = WeightStorage(byteCount: rows * rowBytes)
        let source = data, sourceRowBytes = columns * dtype.byteSize, type = dtype.kernelType
        let destination = storage.bytes
        // Whole row groups per thread: the rows of a group share cache lines.
        pool.forEachRange(count: rows, granule: Int(CK_ROW_GROUP), work: rows * columns * 8) { range in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: columns) { row in
                for r in range {
                    ck_to_f32(source + r * sourceRowBytes, type, columns, row.baseAddress!)
                    ck_quantize_row(row.baseAddress!, format.kernelType, columns, rows, r, destination)
                }
            }
        }
        (owner as? ReleasableWeightStorage)?.release(UnsafeRawBufferPointer(start: data, count: byteCount))
        return WeightTensor(name: name, dtype: .u8, shape: shape, data: UnsafeRawPointer(destination), owner: storage,
                            quantization: format)
    }
}

extension WeightTensor {
    /// These bytes (a U8 tensor [rows, format.rowBytes(columns)], as `idefics quantize` stores a matrix) viewed as
    /// the quantized matrix [rows, columns] they hold: no copy.
    public func viewed(as format: QuantizedFormat, columns: Int) -> WeightTensor {
        precondition(dtype == .u8 && shape.count == 2 && shape[1] == format.rowBytes(columns: columns), "\(name): block bytes")
        return WeightTensor(name: name, dtype: .u8, shape: [shape[0], columns], data: data, owner: owner, quantization: format)
    }

    /// An AutoAWQ GEMM-packed linear layer (`qweight` int32 [in, out / 8], `qzeros` int32 [in / group, out / 8],
    /// `scales` f16 [in / group, out]) repacked as a Q4_Z matrix [out, in] in memory the result owns, exactly (the
    /// same q, z and f16 scale per weight); the mapped pages of the three sources are given back afterwards.
    /// Shapes and types are the caller's to check (`group` a multiple of 32 dividing `in`, `out` of 8).
    public static func awq(name: String, qweight: WeightTensor, qzeros: WeightTensor, scales: WeightTensor,
                           group: Int, pool: WorkerPool) -> WeightTensor {
        let (input, out) = (qweight.shape[0], qweight.shape[1] * 8)
        precondition(input % group == 0 && group % 32 == 0 && scales.shape == [input / group, out], "\(name): AWQ shapes")
        let rowBytes = QuantizedFormat.q4z.rowBytes(columns: input)
        let storage = WeightStorage(byteCount: out * rowBytes)
        let destination = storage.bytes
        let (q, z, d) = (qweight.data.assumingMemoryBound(to: Int32.self), qzeros.data.assumingMemoryBound(to: Int32.self),
                         scales.data.assumingMemoryBound(to: UInt16.self))
        // Chunks of 128 output rows: 16 int32 columns, one cache line of qweight per input, 8 whole row groups.
        pool.forEachRange(count: out / 128 + (out % 128 == 0 ? 0 : 1), work: input * out * 4) { chunks in
            let (r0, r1) = (chunks.lowerBound * 128, min(chunks.upperBound * 128, out))
            ck_awq_to_q4_z(q, z, d, input, out, group, r0, r1, destination)
        }
        for source in [qweight, qzeros, scales] {
            (source.owner as? ReleasableWeightStorage)?.release(UnsafeRawBufferPointer(start: source.data, count: source.byteCount))
        }
        return WeightTensor(name: name, dtype: .u8, shape: [out, input], data: UnsafeRawPointer(destination), owner: storage,
                            quantization: .q4z)
    }
}
