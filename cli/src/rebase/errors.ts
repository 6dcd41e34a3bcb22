import { CodedError } from '../coded-error.js';

/** Stable codes of `kiln rebase` refusals (the buildpacks range, after the frontend's KLN0901-0907). */
export type RebaseErrorCode =
  | 'KLN0920' // the image is not a CNB app image (no io.buildpacks.lifecycle.metadata runImage.topLayer)
  | 'KLN0921' // io.buildpacks.rebasable=false and no --force
  | 'KLN0922' // the new run image does not fit the app: os/arch/variant/distro (--force skips), or stack id/mixins (images before Platform API 0.12)
  | 'KLN0923' // the run image's top layer (runImage.topLayer) is not a layer of the app image
  | 'KLN0924' // --run-image is not the run image (or a mirror) the app image names, and no --force
  | 'KLN0925' // an image to read is missing or malformed (not in the store, no manifest for the platform, layers and diff_ids disagree)
  | 'KLN0926' // a name to write the rebased image to is not a tag reference (a digest, or not a reference)
  | 'KLN0927' // the run image index has no manifest of a platform's os/architecture/variant (each platform of an app index needs one)
  | 'KLN0928'; // an app image index kiln cannot rebase as a whole (a nested index)

/** A `kiln rebase` refusal: stable code, one-line message, optional hint. */
export class RebaseError extends CodedError<RebaseErrorCode> {
  override readonly name = 'RebaseError';
}
