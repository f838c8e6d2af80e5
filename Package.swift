// swift-tools-version:6.1
import PackageDescription

// Numeric code is compiled for the building machine's CPU: without a CPU target swiftc emits SSE only
// and SIMD fused multiply-adds become library calls. Machines without AVX-512 get AVX2 code instead.
let cpuSwift: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "native"])]
let cpuC: [CSetting] = [.unsafeFlags(["-march=native", "-O3", "-ffp-contract=fast"])]

let package = Package(
    name: "swift-idefics",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Idefics", targets: ["Idefics"]),
        .executable(name: "idefics", targets: ["IdeficsCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .target(name: "CKernels", cSettings: cpuC),
        .target(name: "IdeficsTensors", dependencies: ["CKernels"], swiftSettings: cpuSwift),
        .target(name: "IdeficsCheckpoint", dependencies: ["IdeficsTensors"]),
        .target(name: "IdeficsTokenizer"),
        .target(name: "IdeficsImages", swiftSettings: cpuSwift),
        .target(name: "IdeficsModels",
                dependencies: ["IdeficsTensors", "IdeficsCheckpoint"], swiftSettings: cpuSwift),
        .target(name: "IdeficsGeneration",
                dependencies: ["IdeficsTensors", "IdeficsCheckpoint", "IdeficsTokenizer", "IdeficsModels"]),
        .target(name: "Idefics",
                dependencies: ["IdeficsTensors", "IdeficsCheckpoint", "IdeficsTokenizer", "IdeficsImages",
                               "IdeficsModels", "IdeficsGeneration"]),
        .executableTarget(name: "IdeficsCLI", dependencies: [
            "Idefics", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "IdeficsTensorsTests", dependencies: ["IdeficsTensors", "TestSupport"]),
        .testTarget(name: "IdeficsCheckpointTests", dependencies: ["IdeficsCheckpoint", "TestSupport"]),
        .testTarget(name: "IdeficsTokenizerTests", dependencies: ["IdeficsTokenizer", "TestSupport"]),
        .testTarget(name: "IdeficsImagesTests", dependencies: ["IdeficsImages", "TestSupport"]),
        .testTarget(name: "IdeficsModelsTests", dependencies: ["IdeficsModels", "IdeficsCheckpoint", "IdeficsTensors", "TestSupport"]),
        .testTarget(name: "IdeficsTests", dependencies: ["Idefics", "TestSupport"]),
        .testTarget(name: "IdeficsGenerationTests", dependencies: ["IdeficsGeneration", "IdeficsModels", "IdeficsCheckpoint", "IdeficsTensors", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
