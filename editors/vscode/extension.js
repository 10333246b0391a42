// The VS Code client: starts `lpu-lsp` over stdio for .lpu files. Everything else (diagnostics,
// hover, completion, inlay hints, ...) is the server's; highlighting is the TextMate grammar's.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const config = vscode.workspace.getConfiguration("lpu");
  const command = config.get("server.path", "lpu-lsp");
  const args = config.get("server.args", []);
  const serverOptions = {
    run: { command, args, transport: TransportKind.stdio },
    debug: { command, args, transport: TransportKind.stdio },
  };
  const clientOptions = {
    documentSelector: [{ scheme: "file", language: "lpu" }, { scheme: "untitled", language: "lpu" }],
    initializationOptions: { debounceMs: config.get("debounceMs", 50) },
  };
  client = new LanguageClient("lpu", "LPU language server", serverOptions, clientOptions);
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration("lpu")) {
        vscode.window.showInformationMessage("LPU: reload the window to restart lpu-lsp with the new settings.");
      }
    })
  );
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
