// swift-tools-version:6.1
import PackageDescription

// No compiler flags: the numeric kernels (CKernels) are compiled for several instruction sets and chosen at run
// time, so one build runs on any CPU of its architecture and the library works as a versioned dependency.
let package = Package(
    name: "swift-idefics",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Idefics", targets: ["Idefics"]),
        .executable(name: "idefics", targets: ["IdeficsCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        .target(name: "CKernels"),
        .target(name: "IdeficsTensors", dependencies: ["CKernels"]),
        .target(name: "IdeficsFiles"),
        .target(name: "IdeficsCheckpoint", dependencies: ["IdeficsTensors", "IdeficsFiles"]),
        .target(name: "IdeficsTokenizer", dependencies: ["IdeficsFiles"]),
        .target(name: "IdeficsImages", dependencies: ["IdeficsFiles"]),
        .target(name: "IdeficsModels",
                dependencies: ["IdeficsTensors", "IdeficsCheckpoint"]),
        .target(name: "IdeficsGeneration",
                dependencies: ["IdeficsTensors", "IdeficsCheckpoint", "IdeficsTokenizer", "IdeficsModels"]),
        .target(name: "Idefics",
                dependencies: ["IdeficsFiles", "IdeficsTensors", "IdeficsCheckpoint", "IdeficsTokenizer", "IdeficsImages",
                               "IdeficsModels", "IdeficsGeneration"]),
        .target(name: "IdeficsServer", dependencies: [
            "Idefics", .product(name: "Hummingbird", package: "hummingbird"), .product(name: "NIOCore", package: "swift-nio"),
        ]),
        .executableTarget(name: "IdeficsCLI", dependencies: [
            "Idefics", "IdeficsServer", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "IdeficsTensorsTests", dependencies: ["IdeficsTensors", "TestSupport"]),
        .testTarget(name: "IdeficsCheckpointTests", dependencies: ["IdeficsCheckpoint", "TestSupport"]),
        .testTarget(name: "IdeficsTokenizerTests", dependencies: ["IdeficsTokenizer", "TestSupport"]),
        .testTarget(name: "IdeficsImagesTests", dependencies: ["IdeficsImages", "TestSupport"]),
        .testTarget(name: "IdeficsModelsTests", dependencies: ["IdeficsModels", "IdeficsCheckpoint", "IdeficsTensors", "TestSupport"]),
        .testTarget(name: "IdeficsTests", dependencies: ["Idefics", "TestSupport"]),
        .testTarget(name: "IdeficsCLITests", dependencies: ["IdeficsCLI", "TestSupport"]),
        .testTarget(name: "IdeficsServerTests", dependencies: [
            "IdeficsServer", "TestSupport", .product(name: "HummingbirdTesting", package: "hummingbird"),
        ]),
        .testTarget(name: "IdeficsGenerationTests", dependencies: ["IdeficsGeneration", "IdeficsModels", "IdeficsCheckpoint", "IdeficsTensors", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
