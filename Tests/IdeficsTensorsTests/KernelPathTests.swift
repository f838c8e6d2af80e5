import Foundation
import IdeficsTensors
import XCTest

/// The kernel set in use, and the vectorized transcendental functions against the C library's, on whichever set
/// runs (CI runs this target once per set with IDEFICS_KERNELS).
final class KernelPathTests: XCTestCase {
    func testRequestedKernelsAreTheOnesRunning() {
        XCTAssertTrue(KernelPath.portable.isSupported)
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let avx512 = [.avx512, .amx].contains(KernelPath.active)
        XCTAssertEqual(KernelPath.hasBF16Products, KernelPath.active == .amx || (avx512 && flags.contains(" avx512_bf16")))
        XCTAssertEqual(KernelPath.hasInt8DotProducts, avx512 && flags.contains(" avx512_vnni"))
        XCTAssertEqual(KernelPath.quantizesPromptActivations, KernelPath.hasInt8DotProducts || KernelPath.active == .avx2)
        if KernelPath.amx.isSupported { XCTAssertTrue(flags.contains(" amx_bf16") && flags.contains(" amx_tile")) }
        XCTAssertTrue(KernelPath.active.isSupported)
        if let requested = ProcessInfo.processInfo.environment["IDEFICS_KERNELS"], !requested.isEmpty {
            if let path = KernelPath(rawValue: requested), !path.isSupported {
                XCTAssertEqual(KernelPath.requestProblem, "IDEFICS_KERNELS names kernels this CPU cannot run")
                XCTAssertEqual(KernelPath.active, KernelPath.allCases.last { $0.isSupported })
                return
            }
            XCTAssertNil(KernelPath.requestProblem)
            XCTAssertEqual(KernelPath.active.rawValue, requested)
        } else {
            XCTAssertEqual(KernelPath.active, KernelPath.allCases.last { $0.isSupported })
        }
    }

    /// softmax's exp within 3 ulp of the C library's over the whole float range it meets, limits included.
    func testSoftmaxExpMatchesLibm() {
        let xs = stride(from: -175.0, through: 0, by: 0.0137).map { Float($0) } + [-1e-8, 1e-8, -200, 0.5]
        var values = xs
        Ops.softmax(&values, count: values.count)
        let maximum = xs.max()!
        let reference = xs.map { expf($0 - maximum) }
        let sum = reference.reduce(0, +)
        for (i, value) in values.enumerated() {
            let expected = reference[i] / sum
            XCTAssertEqual(value, expected, accuracy: max(3 * expected.ulp, Float.leastNormalMagnitude), "x = \(xs[i])")
        }
    }

    func testSiLUAndGELUMatchTheirFormulas() {
        let xs = stride(from: -20.0, through: 20.0, by: 0.01).map { Float($0) } + [-90, 90]
        var silu = xs
        Ops.siluMultiply(&silu, [Float](repeating: 1, count: xs.count))
        var gelu = xs
        Ops.geluTanh(&gelu)
        for (i, x) in xs.enumerated() {
            let s = Double(x) / (1 + exp(-Double(x)))
            XCTAssertEqual(Double(silu[i]), s, accuracy: 2e-7 * max(1, abs(s)), "silu(\(x))")
            let g = 0.5 * Double(x) * (1 + tanh(0.7978845608028654 * (Double(x) + 0.044715 * pow(Double(x), 3))))
            XCTAssertEqual(Double(gelu[i]), g, accuracy: 2e-7 * max(1, abs(g)), "gelu(\(x))")
        }
    }
}
