"""The instructions given to the caption, summary and music-prompt models."""


ASR_SAMPLE_RATE = 16000

CAPTION_PROMPT = (
    "Describe this video frame in one or two sentences: the setting, the people or objects, "
    "what is happening, and the mood (lighting, colours, atmosphere)."
)

SUMMARY_TEMPLATE = (
    "Here are descriptions of frames sampled in order from one video:\n"
    "{captions}\n\n"
    "Summarise them in two or three sentences as one coherent description of the whole video: "
    "setting, subjects, actions and mood. Do not describe the frames one by one."
)

MUSIC_PROMPT_TEMPLATE = (
    "You write prompts for a text-to-music model that scores videos.\n"
    "Video summary: {summary}\n"
    "Transcript of the speech: {transcript}\n"
    "Creator's notes: {user_text}\n"
    "Measured pacing: {pacing}\n\n"
    "Write one paragraph (at most 60 words) describing background music for this video: mood, "
    "genre, instrumentation, tempo and energy. Describe the sound only: no lyrics, no quotes from "
    "the transcript, no names of artists or songs. Answer with the paragraph only."
)

# Used when a tokenizer has no chat template (base models).
PLAIN_TEMPLATE = "### Instruction:\n{instruction}\n\n### Response:\n"

_NONE = "(none)"
_MAX_TRANSCRIPT_CHARS = 4000  # keeps the final LLM call short; the gist is in the first minutes
_MAX_CAPTION_CHARS = 600
