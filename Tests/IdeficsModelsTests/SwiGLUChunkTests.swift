@testable import IdeficsModels
import IdeficsTensors
import XCTest

/// SwiGLU passes more than 1,024 rows in chunks to bound its intermediate activations; every row must come out bit
/// for bit as from one pass over all rows, at float32 and (BF16 weights) bf16 products and with Q4_0 weights, on
/// whichever kernel set runs (CI runs this target on each).
final class SwiGLUChunkTests: XCTestCase {
    /// Memory owning a matrix's bytes for the life of its WeightTensor.
    private final class Bytes {
        let pointer: UnsafeMutableRawPointer
        init(count: Int) { pointer = .allocate(byteCount: count, alignment: 64) }
        deinit { pointer.deallocate() }
    }

    private func matrix(_ name: String, rows: Int, columns: Int, dtype: DType, seed: UInt64,
                        quantized: QuantizedFormat? = nil) -> Linear {
        var state = seed
        let bytes = Bytes(count: rows * columns * dtype.byteSize)
        for i in 0..<(rows * columns) {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let value = Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 8000
            if dtype == .bf16 {
                bytes.pointer.storeBytes(of: UInt16(value.bitPattern >> 16), toByteOffset: i * 2, as: UInt16.self)
            } else {
                bytes.pointer.storeBytes(of: value, toByteOffset: i * 4, as: Float.self)
            }
        }
        let weight = WeightTensor(name: name, dtype: dtype, shape: [rows, columns], data: bytes.pointer, owner: bytes,
                                  products: dtype == .bf16 ? .bfloat16 : .float32)
        return Linear(weight: quantized.map { weight.quantized($0, pool: WorkerPool(threads: 1)) } ?? weight)
    }

    /// An MLP input -> intermediate -> output of `dtype` (quantized to `format`), its three matrices from `seed` on.
    private func mlp(_ input: Int, _ intermediate: Int, _ output: Int, dtype: DType, format: QuantizedFormat?,
                     seed: UInt64) -> SwiGLU {
        func layer(_ name: String, _ rows: Int, _ columns: Int, _ seed: UInt64) -> Linear {
            matrix(name, rows: rows, columns: columns, dtype: dtype, seed: seed, quantized: format)
        }
        return SwiGLU(gate: layer("gate", intermediate, input, seed), up: layer("up", intermediate, input, seed + 1),
                      down: layer("down", output, intermediate, seed + 2))
    }

    private static let formats: [(DType, QuantizedFormat?)] = [(.f32, nil), (.bf16, nil), (.f32, .q4)]

    func testChunkedRowsEqualOnePassBitForBit() {
        let pool = WorkerPool(threads: 2)
        let (input, intermediate, output, tokens) = (64, 160, 48, 2_500) // 3 chunks of 833-834 rows
        for (dtype, format) in Self.formats {
            let mlp = mlp(input, intermediate, output, dtype: dtype, format: format, seed: 1)
            let x = (0..<(tokens * input)).map { (i: Int) -> Float in Float((i * 37) % 101) / 101 - 0.5 }
            var activated = mlp.gate(x, tokens: tokens, pool: pool)
            Ops.siluMultiply(&activated, mlp.up(x, tokens: tokens, pool: pool), pool: pool)
            let onePass = mlp.down(activated, tokens: tokens, pool: pool)
            let chunked = mlp(x, tokens: tokens, pool: pool)
            XCTAssertEqual(chunked.count, tokens * output)
            XCTAssertEqual(chunked.map { $0.bitPattern }, onePass.map { $0.bitPattern },
                           "\(dtype) \(String(describing: format))")
            XCTAssertGreaterThan(chunked.map(abs).max()!, 0.01) // not a product of zeros
        }
    }

    /// Buffers kept from pass to pass (as a forward pass keeps them from layer to layer) shrink and grow with the row
    /// count and never leak a previous pass's values: each pass equals a fresh one bit for bit. After the largest
    /// pass nothing is allocated again: the output and both intermediates keep their storage.
    func testReusedBuffersGiveFreshResults() {
        let pool = WorkerPool(threads: 2)
        let (input, intermediate, output) = (64, 160, 48)
        for (dtype, format) in Self.formats {
            let mlp = mlp(input, intermediate, output, dtype: dtype, format: format, seed: 4)
            var (out, buffers) = ([Float](), SwiGLU.Buffers())
            var storage: [UnsafeMutableRawPointer?]? // after the first (largest) pass
            for tokens in [1_500, 3, 200, 1, 1_500] { // past the chunking, the GEMM and the AMX schedule thresholds
                let x = (0..<(tokens * input)).map { (i: Int) -> Float in Float((i * 53 + tokens) % 97) / 97 - 0.5 }
                mlp(x, tokens: tokens, into: &out, buffers: &buffers, pool: pool)
                let addresses = [out, buffers.gate, buffers.up].map { array in
                    array.withUnsafeBufferPointer { UnsafeMutableRawPointer(mutating: $0.baseAddress) }
                }
                XCTAssertEqual(addresses, storage ?? addresses, "\(dtype), \(tokens) rows: storage reallocated")
                storage = storage ?? addresses
                let fresh = mlp(x, tokens: tokens, pool: pool)
                XCTAssertEqual(out.count, tokens * output)
                XCTAssertEqual(out.map { $0.bitPattern }, fresh.map { $0.bitPattern },
                               "\(dtype) \(String(describing: format)), \(tokens) rows")
            }
        }
    }
}
