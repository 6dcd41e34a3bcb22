/** XML text escaping of the S3 and Azure Blob error and request documents (the five predefined entities). */
export const escapeXml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** The text of an XML element with the predefined entities replaced (`&amp;` last, so `&amp;lt;` stays `&lt;`). */
export const unescapeXml = (s: string): string => s.replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
