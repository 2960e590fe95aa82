// Sign a credential with @digitalbazaar/vc (eddsa-rdfc-2022) from a fresh
// Ed25519 Multikey, so that Attest's Python verifier can be tried on a
// proof it did not make. Request: {credential, did}. Answer: {credential,
// publicKeyMultibase, verificationMethod}.
import * as vc from '@digitalbazaar/vc';
import * as Ed25519Multikey from '@digitalbazaar/ed25519-multikey';
import {DataIntegrityProof} from '@digitalbazaar/data-integrity';
import {cryptosuite as eddsaRdfc2022} from '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import {makeDocumentLoader, serve} from './loader.mjs';

await serve(async ({credential, did}) => {
  const keyPair = await Ed25519Multikey.generate({controller: did});
  keyPair.id = `${did}#${keyPair.publicKeyMultibase}`;
  const suite = new DataIntegrityProof({signer: keyPair.signer(), cryptosuite: eddsaRdfc2022});
  const signed = await vc.issue({credential, suite, documentLoader: makeDocumentLoader()});
  return {credential: signed, publicKeyMultibase: keyPair.publicKeyMultibase, verificationMethod: keyPair.id};
});
