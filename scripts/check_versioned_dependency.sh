#!/usr/bin/env bash
# Builds and runs a package that depends on swift-idefics by version, as a user's Package.swift would: a throwaway
# clone of the committed tree tagged 0.1.0, resolved through a file:// URL. SwiftPM refuses versioned dependencies
# with unsafe build flags, so this fails if a target gains one. Usage: scripts/check_versioned_dependency.sh [REV]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone --quiet --no-hardlinks "$repo" "$work/swift-idefics"
git -C "$work/swift-idefics" checkout --quiet "${1:-HEAD}"
git -C "$work/swift-idefics" -c user.name=ci -c user.email=ci@localhost tag 0.1.0
mkdir -p "$work/consumer/Sources/consumer"
cat > "$work/consumer/Package.swift" <<SWIFT
// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "consumer",
    dependencies: [.package(url: "file://$work/swift-idefics", from: "0.1.0")],
    targets: [.executableTarget(name: "consumer", dependencies: [.product(name: "Idefics", package: "swift-idefics")])]
)
SWIFT
# The README's library example, through Pipeline.stream and through the GenerationEngine, on the demo model.
cat > "$work/consumer/Sources/consumer/main.swift" <<'SWIFT'
import Foundation
import Idefics

let repository = CommandLine.arguments[1]
let pipeline = try Pipeline(pathOrID: repository + "/Models/idefics2-demo")
let photo = try ImageInput.load(repository + "/Examples/shapes-1.png")
let question = "How many red circles are there?"
var streamed = ""
for try await event in pipeline.stream(messages: [.user(.image(photo), .text(question))],
                                       request: GenerationRequest(maxNewTokens: 20)) {
    if case .token(let token) = event { streamed += token.text }
}
let engine = GenerationEngine(pipeline: pipeline, capacity: 4)
let events = engine.submit(images: [photo]) { pipeline, features in
    let (text, _) = try pipeline.render([.user(.image(photo), .text(question))])
    return (try pipeline.prepare(prompt: text, imageFeatures: features), GenerationRequest(maxNewTokens: 20))
}!
var answer = ""
for try await event in events {
    if case .finished(let output) = event { answer = output.text }
}
engine.stop()
guard streamed == answer, answer.trimmingCharacters(in: .whitespaces) == "3" else {
    print("versioned dependency: the stream said \(streamed.debugDescription), the engine \(answer.debugDescription); expected \"3\"")
    exit(1)
}
print("versioned dependency OK: \(question) -> \(answer) (Pipeline.stream and GenerationEngine), kernels \(KernelPath.active.rawValue)")
SWIFT
cd "$work/consumer"
swift build --quiet 2>&1 | tail -n 20
"$(swift build --show-bin-path)/consumer" "$repo"
