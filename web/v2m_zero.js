// V2M-Zero for ComfyUI: the little the frontend needs to show our outputs on our nodes.
//  - a node that makes audio gets ComfyUI's own audio player (core's AUDIO_UI widget, the one core
//    Load Audio / Preview Audio get); Load Music keeps core's upload button (it comes from the
//    `audio` combo with audio_upload), which needs that player to exist first;
//  - a node that sends a report (`ui.text`) shows it in a read-only text box on the node.
// Only our own node ids are touched. Uses the frontend's window.comfyAPI globals (what
// scripts/app.js and scripts/widgets.js re-export), so it loads on frontends 1.27 to 1.58.

export const AUDIO_NODES = ["V2M_LoadAudio", "V2M_DecodeLatents", "V2M_AlignMusic"];
export const TEXT_NODES = ["V2M_LoadModel", "V2M_Sampler", "V2M_AlignMusic", "V2M_SyncReport",
  "V2M_MusicPrompt", "V2M_Train", "V2M_EncodeFrames", "V2M_SmoothCurve", "V2M_MusicSource",
  "V2M_MuxAudio"];
export const TEXT_WIDGET = "v2m_report";

// Put core's audio player before the upload button (the button looks the player up when it is made).
export function addAudioPlayer(nodeData) {
  const input = (nodeData.input ??= {});
  const required = (input.required ??= {});
  const upload = required.upload;
  delete required.upload;
  required.audioUI = ["AUDIO_UI", {}];
  if (upload) required.upload = upload;
}

export function showText(node, text) {
  const widget = node.widgets?.find((w) => w.name === TEXT_WIDGET);
  if (!widget) return;
  const value = Array.isArray(text) ? text.join("\n\n") : (text ?? "");
  widget.value = value;
  if (widget.element) widget.element.value = value;
}

export function addTextBox(node, api) {
  const { widget } = api.widgets.ComfyWidgets.STRING(node, TEXT_WIDGET, ["STRING", { multiline: true }], api.app.app);
  widget.serialize = false; // never in widgets_values or the prompt
  (widget.options ??= {}).serialize = false;
  if (widget.element) {
    widget.element.readOnly = true;
    widget.element.placeholder = "report (after a run)";
  }
  return widget;
}

// Core fills its player from onExecuted only on output nodes: fill ours from the `audio` the node sent.
export function showAudio(node, audio, api) {
  const widget = node.widgets?.find((w) => w.name === "audioUI");
  const a = audio?.[0];
  if (!widget?.element || !a?.filename) return;
  const q = new URLSearchParams({ filename: a.filename, type: a.type ?? "output", subfolder: a.subfolder ?? "" });
  const url = api.api.api.apiURL(`/view?${q}`);
  widget.element.src = url;
  widget.element.classList?.remove("empty-audio-widget");
  widget.value = url; // newer frontends keep the player's source as the widget's value
}

export const extension = {
  name: "V2M-Zero.Outputs",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const id = nodeData?.name;
    if (AUDIO_NODES.includes(id)) addAudioPlayer(nodeData);
    const text = TEXT_NODES.includes(id), audio = AUDIO_NODES.includes(id);
    if (!text && !audio) return;
    const executed = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      executed?.apply(this, arguments);
      if (text && message?.text !== undefined) showText(this, message.text);
      if (audio && message?.audio) showAudio(this, message.audio, window.comfyAPI);
    };
    if (!text) return;
    const created = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const r = created?.apply(this, arguments);
      addTextBox(this, window.comfyAPI);
      return r;
    };
  },
};

if (globalThis.window?.comfyAPI?.app?.app) window.comfyAPI.app.app.registerExtension(extension);
