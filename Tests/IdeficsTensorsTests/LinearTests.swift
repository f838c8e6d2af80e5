import Foundation
import IdeficsTensors
import TestSupport
import XCTest

/// Owns the bytes behind test weight tensors.
final class Storage {
    let bytes: UnsafeMutableRawPointer
    init(byteCount: Int) { bytes = .allocate(byteCount: byteCount, alignment: 64) }
    deinit { bytes.deallocate() }
}

/// A deterministic matrix stored in `dtype`, with its float values as the kernels must read them.
func makeWeight(rows: Int, cols: Int, dtype: DType, seed: UInt64) -> (WeightTensor, [Float]) {
    var state = seed
    let storage = Storage(byteCount: rows * cols * dtype.byteSize)
    var exact = [Float]()
    for i in 0..<(rows * cols) {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        let value = Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 997
        switch dtype {
        case .f32:
            storage.bytes.storeBytes(of: value, toByteOffset: i * 4, as: Float.self)
            exact.append(value)
        case .bf16:
            let bits = UInt16(value.bitPattern >> 16)
            storage.bytes.storeBytes(of: bits, toByteOffset: i * 2, as: UInt16.self)
            exact.append(Float(bitPattern: UInt32(bits) << 16))
        default:
            let half = Float16(value)
            storage.bytes.storeBytes(of: half, toByteOffset: i * 2, as: Float16.self)
            exact.append(Float(half))
        }
    }
    let tensor = WeightTensor(name: "w", dtype: dtype, shape: [rows, cols], data: UnsafeRawPointer(storage.bytes), owner: storage)
    return (tensor, exact)
}

final class LinearTests: XCTestCase {
    func testMatchesNaiveProductForEveryDTypeAndRaggedShape() {
        let pool = WorkerPool(threads: 2)
        for dtype in [DType.f32, .f16, .bf16] {
            // Streaming (< 4 tokens; one token takes 8 rows at a time, here 70 = 8 full tiles and a 6-row one)
            // and packed shapes: token groups past the 12-token tile, inputs past the 256-input block, rows past
            // the 512-row block and not a multiple of the 32-row panel, 530 tokens in three blocks over three blocks
            // of 512 inputs.
            for (tokens, rows, cols) in [(1, 7, 5), (1, 70, 33), (3, 70, 33), (5, 129, 64), (9, 64, 1000), (13, 70, 300),
                                         (25, 530, 260), (530, 40, 1300)] {
                let (weight, exact) = makeWeight(rows: rows, cols: cols, dtype: dtype, seed: UInt64(rows * cols))
                let x = (0..<(tokens * cols)).map { Float(($0 * 37) % 19) / 19 - 0.5 }
                let bias = (0..<rows).map { Float($0) / 10 }
                let y = Linear(weight: weight, bias: bias)(x, tokens: tokens, pool: pool)
                for t in 0..<tokens {
                    for r in 0..<rows {
                        var expected = Double(bias[r])
                        for k in 0..<cols { expected += Double(x[t * cols + k]) * Double(exact[r * cols + k]) }
                        XCTAssertEqual(Double(y[t * rows + r]), expected, accuracy: 1e-4 * max(1, abs(expected)),
                                       "\(dtype) \(tokens)x\(rows)x\(cols) at [\(t), \(r)]")
                    }
                }
            }
        }
    }

    /// bf16 products: x rounded to nearest-even bf16, times the BF16 weights exactly, summed in float32. The bf16
    /// GEMM (from 20 tokens where the CPU has one: AMX tiles on the amx kernels, vdpbf16ps on avx512 with
    /// AVX512_BF16), vdpbf16ps's few-token kernel (under 20 tokens on those CPUs) and the float32 kernels on rounded
    /// activations (any other case) must all give that: within 5e-7
    /// of sum |x w| per value (float32 sums of up to 2,100 terms; the worst seen is under 1.5e-7), while the exact
    /// float32 product is further away than that (the rounding happened). Shapes: streaming and packed, an odd input
    /// count, inputs past the float32 kernels' 512-input block, in several of AMX's chunks (up to 768 inputs each) and
    /// in two of AVX512_BF16's (up to 1,152 inputs, K split evenly: 2,048 and 2,100), rows past the 256-row block and
    /// ending in part of a 16-row group, a thread's rows past AVX512_BF16's 256-row block (4,200 rows: 544 per task),
    /// tokens in part of a 32-token block and after whole ones, on both sides of AMX's few-token schedule (up to 128
    /// tokens), 530 tokens with two blocks of inputs (AVX512_BF16 then runs them in three blocks of tokens). F32 and
    /// F16 matrices are rounded to BF16 first (as loading a model in bf16 does), then multiply alike: three of the
    /// shapes (two of them over several of the conversion's 4,096-value chunks, on both threads).
    func testBF16ProductsEqualExactProductsOfRoundedActivations() {
        let pool = WorkerPool(threads: 2)
        var roundingSeen = false
        let shapes = [(1, 7, 5), (3, 70, 33), (19, 64, 1000), (25, 530, 260), (24, 300, 1101), (40, 33, 2048),
                      (77, 41, 2100), (128, 20, 64), (129, 41, 2100), (200, 530, 261), (21, 4200, 40), (530, 40, 1300)]
        for dtype in [DType.bf16, .f32, .f16] {
            for (tokens, rows, cols) in dtype == .bf16 ? shapes : [shapes[1], shapes[3], shapes[8]] {
                let (stored, exact) = makeWeight(rows: rows, cols: cols, dtype: dtype, seed: UInt64(rows * cols + 1))
                let w = exact.map(nearestBF16)
                let x = (0..<(tokens * cols)).map { Float(($0 * 37) % 19) / 19 - 0.5 }
                let rounded = x.map(nearestBF16)
                let weight = stored.multiplied(at: .bfloat16, pool: pool)
                XCTAssertEqual(weight.dtype, .bf16)
                let y = Linear(weight: weight)(x, tokens: tokens, pool: pool)
                for t in 0..<tokens {
                    for r in 0..<rows {
                        var expected = 0.0, magnitude = 0.0, unrounded = 0.0
                        for k in 0..<cols {
                            expected += Double(rounded[t * cols + k]) * Double(w[r * cols + k])
                            magnitude += abs(Double(rounded[t * cols + k]) * Double(w[r * cols + k]))
                            unrounded += Double(x[t * cols + k]) * Double(exact[r * cols + k])
                        }
                        XCTAssertEqual(Double(y[t * rows + r]), expected, accuracy: 5e-7 * magnitude,
                                       "\(dtype) \(tokens)x\(rows)x\(cols) at [\(t), \(r)]")
                        roundingSeen = roundingSeen || abs(Double(y[t * rows + r]) - unrounded) > 5e-7 * magnitude
                    }
                }
            }
        }
        XCTAssertTrue(roundingSeen, "bf16 products gave the float32 products")
    }

    /// A token's outputs do not depend on the other tokens of the call, bit for bit, once the call is past the
    /// few-token paths (streaming under 4 tokens; at bf16, the float32 kernels under 20): what lets the images of a
    /// split image run their products together. 530 tokens (in blocks of tokens where K is in several blocks) against
    /// 20, 257 and 30 of them alone, with a bias, at float32 and bf16 products, F32 and BF16 matrices.
    func testTokensOutputsDoNotDependOnTheOtherTokens() {
        let pool = WorkerPool(threads: 2)
        for (dtype, precision) in [(DType.f32, ProductPrecision.float32), (.bf16, .float32), (.bf16, .bfloat16)] {
            for (rows, cols) in [(40, 1300), (70, 2100)] {
                let (stored, _) = makeWeight(rows: rows, cols: cols, dtype: dtype, seed: UInt64(rows + cols))
                let linear = Linear(weight: stored.multiplied(at: precision, pool: pool),
                                    bias: (0..<rows).map { Float($0) / 10 })
                let tokens = 530
                let x = (0..<(tokens * cols)).map { Float(($0 * 37) % 19) / 19 - 0.5 }
                let all = linear(x, tokens: tokens, pool: pool)
                for part in [0..<20, 100..<357, 500..<530] {
                    let alone = linear(Array(x[part.lowerBound * cols..<part.upperBound * cols]), tokens: part.count,
                                       pool: pool)
                    XCTAssertTrue(alone == Array(all[part.lowerBound * rows..<part.upperBound * rows]),
                                  "\(dtype) at \(precision), \(rows)x\(cols): tokens \(part) alone differ")
                }
            }
        }
    }

    /// Under 20 tokens (decoding several sequences at once) a token's outputs do not depend on the call's other tokens
    /// either, bit for bit: a sequence decodes alike alone and in a batch. 19 tokens against 1, 4 and 9 of them
    /// alone (the few-token kernels tile 8 rows for one token, 4 rows x up to 4 tokens for more), 1,000 inputs (past
    /// the last whole line of 32) and 70 rows (a partial tile), at float32 and bf16 products (with AVX512_BF16:
    /// vdpbf16ps's few-token kernel, `ck_matmul_bf16_few`).
    func testFewTokensOutputsDoNotDependOnTheOtherTokens() {
        let pool = WorkerPool(threads: 2)
        for (dtype, precision) in [(DType.f32, ProductPrecision.float32), (.bf16, .float32), (.bf16, .bfloat16)] {
            let (rows, cols, tokens) = (70, 1000, 19)
            let (stored, _) = makeWeight(rows: rows, cols: cols, dtype: dtype, seed: 5)
            let linear = Linear(weight: stored.multiplied(at: precision, pool: pool), bias: (0..<rows).map { Float($0) })
            let x = (0..<(tokens * cols)).map { Float(($0 * 41) % 23) / 23 - 0.5 }
            let all = linear(x, tokens: tokens, pool: pool)
            for part in [0..<1, 5..<9, 10..<19] {
                let alone = linear(Array(x[part.lowerBound * cols..<part.upperBound * cols]), tokens: part.count, pool: pool)
                XCTAssertTrue(alone == Array(all[part.lowerBound * rows..<part.upperBound * rows]),
                              "\(dtype) at \(precision): tokens \(part) alone differ")
            }
        }
    }

    /// A bias is added to the finished sum, bit for bit the value of a product without it plus the bias (as a
    /// separate pass adds it): the bf16 GEMM adds it as it stores a tile of its last block of inputs, not earlier
    /// (adding it with the first of two blocks, 2,100 inputs, rounds differently). Shapes: one and two blocks of
    /// inputs, ragged tokens and rows, a thread's rows over several 256-row blocks (4,200 rows), two blocks of inputs
    /// for each of three blocks of tokens (530 tokens).
    func testBiasIsAddedToTheWholeSum() {
        let pool = WorkerPool(threads: 2)
        for (tokens, rows, cols) in [(25, 530, 260), (24, 300, 1101), (129, 41, 2100), (21, 4200, 40), (530, 40, 1300)] {
            let (stored, _) = makeWeight(rows: rows, cols: cols, dtype: .bf16, seed: UInt64(rows + cols))
            let weight = stored.multiplied(at: .bfloat16, pool: pool)
            let x = (0..<(tokens * cols)).map { Float(($0 * 41) % 23) / 23 - 0.5 }
            let bias = (0..<rows).map { Float($0 % 97) * 0.37 - 17.3 }
            let plain = Linear(weight: weight)(x, tokens: tokens, pool: pool)
            let biased = Linear(weight: weight, bias: bias)(x, tokens: tokens, pool: pool)
            var mismatches = 0
            for t in 0..<tokens {
                for r in 0..<rows where biased[t * rows + r] != plain[t * rows + r] + bias[r] { mismatches += 1 }
            }
            XCTAssertEqual(mismatches, 0, "\(tokens)x\(rows)x\(cols): values other than the sum plus the bias")
        }
    }

    /// F32 and F16 weights become BF16 for bf16 products as torch's `.to(torch.bfloat16)` rounds them: to the nearest
    /// bf16, ties to even (both directions), the largest floats past bf16's largest finite value to infinity,
    /// subnormals kept, NaN a NaN, signs and infinities kept. `nearestBF16` finds the nearest value by distance, not
    /// by the bit trick the kernels use. At float32 the weights are left as stored (the same memory).
    func testFloatWeightsRoundToNearestBF16() {
        let pool = WorkerPool(threads: 2)
        let special: [Float] = [1, 1 + 0x1p-8, 1 + 3 * 0x1p-8, -(1 + 0x1p-8 + 0x1p-20), .greatestFiniteMagnitude,
                                -.greatestFiniteMagnitude, 0x1.fep127, .infinity, -.infinity, .nan, 0, -0.0, 1e-40,
                                -3e-39, .leastNonzeroMagnitude, 65504, 6e-8, 0.1, -123.456, 3.14159265]
        let values = special + (0..<5000).map { Float(sin(Double($0) * 0.37) * pow(10, Double($0 % 13) - 6)) }
        for dtype in [DType.f32, .f16] {
            let storage = Storage(byteCount: values.count * dtype.byteSize)
            let stored = values.enumerated().map { i, value -> Float in
                if dtype == .f32 {
                    storage.bytes.storeBytes(of: value, toByteOffset: i * 4, as: Float.self)
                    return value
                }
                storage.bytes.storeBytes(of: Float16(value), toByteOffset: i * 2, as: Float16.self)
                return Float(Float16(value))
            }
            let weight = WeightTensor(name: "w", dtype: dtype, shape: [values.count / 4, 4],
                                      data: UnsafeRawPointer(storage.bytes), owner: storage)
            XCTAssertEqual(weight.multiplied(at: .float32, pool: pool).data, weight.data)
            let converted = weight.multiplied(at: .bfloat16, pool: pool)
            XCTAssertEqual(converted.dtype, .bf16)
            XCTAssertEqual(converted.products, .bfloat16)
            XCTAssertEqual(converted.shape, weight.shape)
            let bits = converted.data.assumingMemoryBound(to: UInt16.self)
            for (i, value) in stored.enumerated() {
                let got = Float(bitPattern: UInt32(bits[i]) << 16), expected = nearestBF16(value)
                XCTAssert(got.bitPattern == expected.bitPattern || (got.isNaN && expected.isNaN),
                          "\(dtype) \(value): \(got), not \(expected)")
            }
        }
    }

    /// Q8_0 and Q4_0 matrices through the same shapes: the product equals the naive one over the dequantized
    /// weights (the kernels must read every block, scale, nibble and partial last block right). Each dequantized weight is within half a step d of the original for Q8_0
    /// (d = max|w| / 127) and within one step for Q4_0 (d = max|w| / 8: the end opposite the largest magnitude is
    /// clamped at q = 15), plus what storing d as f16 costs (|q| <= 127, resp. 8, times at most d / 2048).
    func testQuantizedMatricesMatchTheProductOfTheirDequantizedWeights() {
        let pool = WorkerPool(threads: 2)
        for format in QuantizedFormat.targets {
            let (levels, tolerance): (Float, Float) = format == .q8 ? (127, 0.5 + 127 / 2048) : (8, 1 + 8 / 2048)
            // Rows in groups of 16, a last group of 1-13 rows (past the 8 lanes of an AVX2 vector: 45 = 32 + 13); one
            // token's rows split across threads (1 x 530 x 260); 530 tokens in blocks over blocks of 512 inputs.
            for (tokens, rows, cols) in [(1, 7, 5), (3, 70, 33), (5, 129, 64), (2, 37, 200), (1, 45, 200), (3, 45, 64),
                                         (9, 64, 1000), (13, 70, 300), (1, 530, 260), (25, 530, 260), (530, 40, 1300)] {
                let (weight, exact) = makeWeight(rows: rows, cols: cols, dtype: .f32, seed: UInt64(rows + cols))
                let quantized = weight.quantized(format, pool: pool)
                XCTAssertEqual(quantized.byteCount, rows * ((cols + 31) / 32) * (format == .q8 ? 34 : 18))
                var dequantized = [Float](repeating: 0, count: rows * cols)
                dequantized.withUnsafeMutableBufferPointer { out in
                    for r in 0..<rows { quantized.row(r, into: out.baseAddress! + r * cols) }
                }
                for r in 0..<rows {
                    for block in stride(from: 0, to: cols, by: 32) {
                        let range = r * cols + block..<r * cols + min(cols, block + 32)
                        let step = exact[range].map(abs).max()! / levels
                        for i in range {
                            XCTAssertLessThanOrEqual(abs(dequantized[i] - exact[i]), step * tolerance + 1e-7, "\(format) [\(i)]")
                        }
                    }
                }
                checkProduct(quantized, dequantized: dequantized, tokens: tokens, pool: pool)
            }
        }
    }

    /// The integer sums at their largest: every activation quantizes to 127 and every weight to the top of its
    /// range (Q8_0: 127, pairs of 2 * 127 * 127 = 32258 beside int16's 32767; Q4_0: nibble 15, whose 8 pairs per
    /// block the AVX2 kernel adds in int16 up to 30480), by one token (decode) and 25 (prompts).
    func testIntegerSumsHoldAtTheirLargest() {
        let pool = WorkerPool(threads: 2)
        let (rows, cols) = (48, 256)
        // A block of one -8 and 31 times 8: Q8_0 stores q = -127 and 127; Q4_0 takes d = 1 from the first largest
        // magnitude, -8 d, and stores nibble 0 and, clamped, 15 (8 read back as 7).
        let values = (0..<(rows * cols)).map { i -> Float in i % 32 == 0 ? -8 : 8 }
        let storage = Storage(byteCount: rows * cols * 4)
        for (i, v) in values.enumerated() { storage.bytes.storeBytes(of: v, toByteOffset: i * 4, as: Float.self) }
        let weight = WeightTensor(name: "w", dtype: .f32, shape: [rows, cols], data: UnsafeRawPointer(storage.bytes), owner: storage)
        for format in QuantizedFormat.targets {
            let quantized = weight.quantized(format, pool: pool)
            var dequantized = [Float](repeating: 0, count: rows * cols)
            dequantized.withUnsafeMutableBufferPointer { out in
                for r in 0..<rows { quantized.row(r, into: out.baseAddress! + r * cols) }
            }
            XCTAssertEqual(dequantized[1], format == .q8 ? 8 : 7, accuracy: 1e-3, "\(format)") // d stored as f16
            for tokens in [1, 25] {
                checkProduct(quantized, dequantized: dequantized, tokens: tokens, pool: pool,
                             x: [Float](repeating: 0.5, count: tokens * cols))
            }
        }
    }

    /// AutoAWQ's GEMM packing (qweight int32 [in, out/8] with nibble i of column c holding output 8c + [0, 2, 4, 6,
    /// 1, 3, 5, 7][i]; qzeros alike per group; fp16 scales [in/group, out]), packed here from known q, z and s:
    /// the repacked Q4_Z matrix holds exactly (q - z) * s, and its products are those of those weights.
    func testAWQMatricesRepackExactlyAndMultiply() {
        let pool = WorkerPool(threads: 2)
        let order = [0, 2, 4, 6, 1, 3, 5, 7]
        for (tokens, rows, cols, group) in [(1, 8, 128, 128), (3, 136, 256, 128), (25, 264, 384, 128), (5, 16, 64, 32)] {
            var state = UInt64(rows * cols + group)
            func next(_ n: Int) -> Int {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return Int(state >> 33) % n
            }
            let q = (0..<(rows * cols)).map { _ in next(16) }               // [out, in]
            let z = (0..<(rows * cols / group)).map { _ in next(16) }       // [out, in / group]
            let s = (0..<(rows * cols / group)).map { _ in Float16(Float(next(1000) + 1) / 4096) }
            func packed(_ value: (Int, Int) -> Int, inputs: Int) -> WeightTensor {
                let storage = Storage(byteCount: inputs * rows / 2)
                for k in 0..<inputs {
                    for c in 0..<(rows / 8) {
                        var word: UInt32 = 0
                        for i in 0..<8 { word |= UInt32(value(k, 8 * c + order[i])) << (4 * i) }
                        storage.bytes.storeBytes(of: word, toByteOffset: (k * rows / 8 + c) * 4, as: UInt32.self)
                    }
                }
                return WeightTensor(name: "p", dtype: .i32, shape: [inputs, rows / 8], data: UnsafeRawPointer(storage.bytes), owner: storage)
            }
            let groups = cols / group
            let scales = Storage(byteCount: groups * rows * 2)
            for g in 0..<groups {
                for r in 0..<rows { scales.bytes.storeBytes(of: s[r * groups + g], toByteOffset: (g * rows + r) * 2, as: Float16.self) }
            }
            let matrix = WeightTensor.awq(
                name: "w", qweight: packed({ k, r in q[r * cols + k] }, inputs: cols),
                qzeros: packed({ g, r in z[r * groups + g] }, inputs: groups),
                scales: WeightTensor(name: "s", dtype: .f16, shape: [groups, rows], data: UnsafeRawPointer(scales.bytes), owner: scales),
                group: group, pool: pool)
            XCTAssertEqual(matrix.shape, [rows, cols])
            XCTAssertEqual(matrix.byteCount, rows * cols / 32 * 20)
            var dequantized = [Float](repeating: 0, count: rows * cols)
            dequantized.withUnsafeMutableBufferPointer { out in
                for r in 0..<rows { matrix.row(r, into: out.baseAddress! + r * cols) }
            }
            for r in 0..<rows {
                for k in 0..<cols {
                    let g = r * groups + k / group
                    XCTAssertEqual(dequantized[r * cols + k], Float(q[r * cols + k] - z[g]) * Float(s[g]), "[\(r), \(k)]")
                }
            }
            checkProduct(matrix, dequantized: dequantized, tokens: tokens, pool: pool)
        }
    }

    /// x Wᵀ of a quantized matrix against the naive product over its dequantized weights. Under 20 tokens, and at
    /// any count with VNNI or the AVX2 kernels, the activations are quantized to int8 blocks too (integer dot
    /// products); otherwise the packed path dequantizes the weights and keeps x in float32.
    private func checkProduct(_ matrix: WeightTensor, dequantized: [Float], tokens: Int, pool: WorkerPool, x: [Float]? = nil) {
        let (rows, cols) = (matrix.shape[0], matrix.shape[1])
        let x = x ?? (0..<(tokens * cols)).map { (i: Int) -> Float in Float((i * 37) % 19) / 19 - 0.5 }
        let xSeen = tokens < 20 || KernelPath.quantizesPromptActivations ? Self.quantizedActivations(x, width: cols) : x
        let y = Linear(weight: matrix)(x, tokens: tokens, pool: pool)
        for t in 0..<tokens {
            for r in 0..<rows {
                var expected = 0.0
                for k in 0..<cols { expected += Double(xSeen[t * cols + k]) * Double(dequantized[r * cols + k]) }
                XCTAssertEqual(Double(y[t * rows + r]), expected, accuracy: 1e-4 * max(1, abs(expected)),
                               "\(matrix.quantization!) \(tokens)x\(rows)x\(cols) at [\(t), \(r)]")
            }
        }
    }

    /// Each row's blocks of 32 as the kernels quantize them: d = max|x| / 127 (float32), q = round(x / d).
    private static func quantizedActivations(_ x: [Float], width: Int) -> [Float] {
        var out = x
        for start in stride(from: 0, to: x.count, by: width) {
            for block in stride(from: start, to: start + width, by: 32) {
                let range = block..<min(start + width, block + 32)
                let scale = x[range].map(abs).max()! / 127, inverse = scale != 0 ? 1 / scale : 0
                for i in range { out[i] = (x[i] * inverse).rounded() * scale }
            }
        }
        return out
    }

    func testWorkerPoolRunsEveryTaskOnceAcrossManyJobs() {
        let pool = WorkerPool(threads: 3)
        for job in 0..<2000 {
            let tasks = 1 + job % 17
            var hits = [Int](repeating: 0, count: tasks)
            hits.withUnsafeMutableBufferPointer { buffer in
                let base = buffer.baseAddress!
                pool.run(tasks: tasks) { base[$0] += 1 }
            }
            XCTAssertEqual(hits, [Int](repeating: 1, count: tasks), "job \(job)")
        }
    }
}
